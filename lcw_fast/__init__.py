"""lcw-fast: fused Cramer-Wold kernel distances and LCW generator training.

    import lcw_fast
    d = lcw_fast.cw_distance(x, y, gamma=0.01)   # x: (n, D), y: (m, D) -> 0-dim tensor
    s = lcw_fast.cw_normality(z)                 # z: (n, D) -> 0-dim tensor
"""
from .backends import BACKENDS
from .distance import cw_distance, cw_normality, kernel_sum, normality_gamma, silverman_gamma
from .reference import C0

__all__ = ["BACKENDS", "C0", "cw_distance", "cw_normality", "kernel_sum", "normality_gamma", "silverman_gamma"]
__version__ = "0.1.0"
