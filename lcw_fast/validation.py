"""Input checks shared by every public function: one place, clear messages naming the argument."""
import math
from numbers import Real

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
PRECISIONS = ("default", "fast")


def check_sample(name: str, t) -> None:
    """A sample is a floating (n, D) tensor with n >= 1 and D >= 2."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (n, D), got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D of shape (n, D), got shape {tuple(t.shape)}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have a floating dtype (float16, bfloat16, float32, float64), got {t.dtype}")
    n, d = t.shape
    if n < 1:
        raise ValueError(f"{name} must hold at least one point, got shape {tuple(t.shape)}")
    if d < 2:
        raise ValueError(f"{name} must have dimension D >= 2 (the kernel uses 2D - 3 > 0), got D = {d}")


def check_pair(x: torch.Tensor, y: torch.Tensor, names=("x", "y")) -> None:
    """Two samples of the same dimension on the same device."""
    check_sample(names[0], x)
    check_sample(names[1], y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{names[0]} and {names[1]} must have the same dimension D, "
                         f"got {x.shape[1]} and {y.shape[1]}")
    if x.device != y.device:
        raise ValueError(f"{names[0]} and {names[1]} must be on the same device, got {x.device} and {y.device}")


def check_gamma(gamma, name: str = "gamma") -> float:
    """A bandwidth is a positive, finite real number; returns it as a Python float."""
    if isinstance(gamma, torch.Tensor):
        if gamma.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(gamma.shape)}")
        gamma = gamma.item()
    if isinstance(gamma, bool) or not isinstance(gamma, Real):
        raise TypeError(f"{name} must be a positive float (or 'silverman' where allowed), got {gamma!r}")
    gamma = float(gamma)
    if not math.isfinite(gamma) or gamma <= 0.0:
        raise ValueError(f"{name} must be positive and finite, got {gamma}")
    return gamma


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision
