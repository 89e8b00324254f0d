"""lcw-fast: fused Cramer-Wold kernel distances and LCW generator training.

    import lcw_fast
    d = lcw_fast.cw_distance(x, y, gamma=0.01)   # x: (n, D), y: (m, D) -> 0-dim tensor
    s = lcw_fast.cw_normality(z)                 # z: (n, D) -> 0-dim tensor
    loss = lcw_fast.nn.CWDistance()(x, y)        # the same as nn.Module losses
    from lcw_fast.compat.gmum import cw_normality  # the paper authors' metrics/cw.py conventions
"""
from . import compat, nn
from .backends import BACKENDS
from .distance import cw_distance, cw_normality, kernel_sum, normality_gamma, silverman_gamma
from .reference import C0

# The submodules nn and compat stay out of __all__: a star import must not shadow torch.nn.
__all__ = ["BACKENDS", "C0", "cw_distance", "cw_normality", "kernel_sum", "normality_gamma", "silverman_gamma"]
__version__ = "0.1.0"
