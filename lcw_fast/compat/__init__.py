"""Drop-in replacements for other projects' CW code, running on lcw_fast's fused kernels.

lcw_fast.compat.gmum: the functions of the paper authors' `metrics/cw.py` (gmum/lcw-generator),
with their names, signatures and numeric conventions (docs/compat-gmum.md).
"""
from . import gmum

__all__ = ["gmum"]
