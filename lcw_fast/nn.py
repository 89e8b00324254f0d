"""nn.Module losses over lcw_fast's fused kernel sums: CWDistance(x, y) and CWNormality(z).

    loss_fn = lcw_fast.nn.CWDistance(gamma="silverman")
    loss = loss_fn(generated, data)      # (n, D), (m, D) -> 0-dim tensor

Inputs and `reduction`: a CW distance is one number for a whole sample, so a 2-D input (n, D) is
one sample and gives a 0-dim result whatever `reduction` is. A 3-D input (B, n, D) is a batch of B
independent samples (each compared with its own partner, each with its own bandwidth when that is
computed from the data); the B values are then reduced:

    reduction="mean"  the mean of the B values (the default)
    reduction="sum"   their sum
    reduction="none"  the (B,) tensor of values

Units: the values are squared CW distances with the factor C0 = 1/(2 sqrt(pi)) (see
lcw_fast.distance), in the inputs' dtype.

torch.compile: the kernel sums are torch.library custom ops with fake kernels and autograd, so a
model together with these losses compiles with fullgraph=True when gamma is a number.
gamma="silverman" reads the data's std back to the host (a `.item()`): under torch.compile that is
one graph break per sample (compile without fullgraph=True), and one device sync per sample.
The modules are not TorchScript-scriptable (the public functions they call are plain Python).
"""
from typing import Optional, Union

import torch

from .backends import BACKENDS
from .distance import cw_distance, cw_normality
from .validation import check_gamma, check_precision

REDUCTIONS = ("none", "mean", "sum")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """(B,) values of a batch of samples -> reduced as `reduction` says."""
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def _check_batch(name: str, t) -> None:
    """A sample (n, D), or a batch (B, n, D) of B >= 1 samples (the per-sample checks come later)."""
    if not isinstance(t, torch.Tensor):
        return  # the public functions name the argument and the expected type
    if t.dim() not in (2, 3):
        raise ValueError(f"{name} must be a sample (n, D) or a batch (B, n, D) of samples, got shape {tuple(t.shape)}")
    if t.dim() == 3 and t.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample, got shape {tuple(t.shape)}")


class _CWLoss(torch.nn.Module):
    """The options every CW loss keeps, checked once at construction (ValueError naming the argument)."""

    def __init__(self, gamma, backend: str, precision: str, reduction: str):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.gamma, self.backend, self.precision, self.reduction = gamma, backend, check_precision(precision), reduction

    def extra_repr(self) -> str:
        return (f"gamma={self.gamma!r}, backend={self.backend!r}, precision={self.precision!r}, "
                f"reduction={self.reduction!r}")


class CWDistance(_CWLoss):
    """Squared Cramer-Wold distance between two samples, as a loss: forward(x, y).

    x: (n, D) and y: (m, D) -> 0-dim tensor; or x: (B, n, D) and y: (B, m, D) -> reduced over B
    (see the module docstring for `reduction`). Differentiable w.r.t. x and y.

    gamma: a positive float (the bandwidth, in squared units of the data), or "silverman" for
        (1.06 * sigma * N^(-1/5))^2 from each pair of samples (sigma: unbiased std over all entries
        of cat(x, y), N = (n + m) / 2; no gradient flows through it).
    backend: "auto", "cpu", "cuda", "triton" or "reference" (lcw_fast.backends).
    precision: "default" or "fast" (TF32 Gram on GPUs).
    reduction: "mean", "sum" or "none", over the leading batch dimension of 3-D inputs.
    """

    def __init__(self, gamma: Union[float, str] = "silverman", backend: str = "auto", precision: str = "default",
                 reduction: str = "mean"):
        super().__init__(gamma if isinstance(gamma, str) and gamma == "silverman" else check_gamma(gamma),
                         backend, precision, reduction)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_batch("x", x)
        _check_batch("y", y)
        if x.dim() != y.dim():
            raise ValueError(f"x and y must both be samples (n, D) or both batches (B, n, D), "
                             f"got shapes {tuple(x.shape)} and {tuple(y.shape)}")
        if x.dim() == 2:
            return cw_distance(x, y, self.gamma, self.backend, self.precision)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must hold the same number B of samples, got {x.shape[0]} and {y.shape[0]}")
        values = [cw_distance(a, b, self.gamma, self.backend, self.precision) for a, b in zip(x, y)]
        return _reduce(torch.stack(values), self.reduction)


class CWNormality(_CWLoss):
    """Squared Cramer-Wold distance of a sample to N(0, I), as a loss: forward(z).

    z: (n, D) -> 0-dim tensor; or z: (B, n, D) -> reduced over B (see the module docstring).
    Differentiable w.r.t. z.

    gamma: a positive float, or None for normality_gamma(n) = (4 / (3n))^0.4 (a constant of n).
    backend, precision, reduction: as for CWDistance.
    """

    def __init__(self, gamma: Optional[float] = None, backend: str = "auto", precision: str = "default",
                 reduction: str = "mean"):
        super().__init__(None if gamma is None else check_gamma(gamma), backend, precision, reduction)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _check_batch("z", z)
        if z.dim() == 2:
            return cw_normality(z, self.gamma, self.backend, self.precision)
        values = [cw_normality(sample, self.gamma, self.backend, self.precision) for sample in z]
        return _reduce(torch.stack(values), self.reduction)
