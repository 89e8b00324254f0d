"""Public API: Cramer-Wold distances between samples, and of a sample to N(0, I).

Convention (see docs/backends.md, "The math"): with c = 2D - 3, k(d) = (gamma + d/c)^(-1/2), C0 = 1/(2 sqrt(pi)),

  cw_distance(x, y)  = C0 [ mean_ij k(|xi-xj|^2) + mean_ij k(|yi-yj|^2) - 2 mean_ij k(|xi-yj|^2) ]
  cw_normality(z)    = C0 [ mean_ij k(|zi-zj|^2) + (1+gamma)^(-1/2) - 2 mean_i (gamma + 1/2 + |zi|^2/c)^(-1/2) ]

Means run over all n^2, m^2 and n*m pairs, diagonals included. Both results carry the factor C0;
the paper's public code applies C0 to the distance but not to the normality term, so our
cw_normality is C0 times theirs and the two are directly comparable. gamma is a constant for
autograd. The three sums are combined in float64 and the result is cast to the inputs' dtype.

Each sum is one op call (lcw_fast.backends.Backend): when one of its inputs requires grad (and grad
mode is on) a one-pass op returns the value with its gradients, and the backward only scales them;
forward-only calls use the value-only ops.
"""
import functools
import math
from typing import Optional, Union

import torch

from . import backends
from .reference import C0
from .validation import check_gamma, check_pair, check_precision, check_sample

_HALF = (torch.float16, torch.bfloat16)


def silverman_gamma(std: float, n: float) -> float:
    """Silverman's rule of thumb for the bandwidth: (1.06 * std * n^(-1/5))^2."""
    return (1.06 * float(std) * float(n) ** -0.2) ** 2


def normality_gamma(n: int) -> float:
    """Default bandwidth of cw_normality for a sample of n points: (4 / (3n))^0.4."""
    return (4.0 / (3.0 * n)) ** 0.4


def _sample_gamma(x: torch.Tensor, y: torch.Tensor) -> float:
    """Silverman bandwidth from the unbiased std over every entry of cat(x, y), N = (n + m) / 2."""
    with torch.no_grad():
        n, m = x.shape[0], y.shape[0]
        total = (n + m) * x.shape[1]
        s = x.double().sum() + y.double().sum()
        ss = x.double().square().sum() + y.double().square().sum()
        var = (ss - s * s / total) / max(total - 1, 1)
        return silverman_gamma(math.sqrt(max(var.item(), 0.0)), (n + m) / 2)


def _for_backend(be: backends.Backend, *samples: torch.Tensor):
    """Brings samples to one dtype (float32 for half precision on the CPU) and centres them for
    the fused kernels.

    The common mean is detached: the kernel sums are translation invariant, so it carries no gradient.
    Half-precision samples are not centred: rounding x - mean back to 16 bits would add error.
    """
    dtype = functools.reduce(torch.promote_types, (s.dtype for s in samples))
    if samples[0].device.type == "cpu" and dtype in _HALF:
        dtype = torch.float32
    samples = tuple(s.to(dtype) for s in samples)
    if not be.fused or dtype in _HALF:
        return samples
    with torch.no_grad():
        mean = sum(s.sum(0) for s in samples) / sum(s.shape[0] for s in samples)
    return tuple(s - mean for s in samples)


def kernel_sum(x: torch.Tensor, y: Optional[torch.Tensor] = None, *, gamma: float,
               backend: str = "auto", precision: str = "default") -> torch.Tensor:
    """sum_ij k(|x_i - y_j|^2) over all n*m pairs (y=None: the self-sum over x), 0-dim float64.

    x: (n, D), y: (m, D). Differentiable w.r.t. x and y.
    """
    if y is None:
        check_sample("x", x)
    else:
        check_pair(x, y)
    gamma = check_gamma(gamma)
    check_precision(precision)
    be = backends.resolve(backend, x)
    if y is None:
        (xc,) = _for_backend(be, x)
        return be.self_sum(xc, gamma, precision)
    xc, yc = _for_backend(be, x, y)
    return be.cross_sum(xc, yc, gamma, precision)


def cw_distance(x: torch.Tensor, y: torch.Tensor, gamma: Union[float, str] = "silverman",
                backend: str = "auto", precision: str = "default") -> torch.Tensor:
    """Squared Cramer-Wold distance between samples x: (n, D) and y: (m, D) -> 0-dim tensor.

    gamma: a positive float, or "silverman" for (1.06 * sigma * N^(-1/5))^2 with sigma the unbiased
        std over all entries of cat(x, y) and N = (n + m) / 2 (computed without gradient; reading
        it back costs one device sync).
    backend: "auto", "cpu", "cuda", "triton" or "reference" (see lcw_fast.backends).
    precision: "default" (float32-accurate) or "fast" (TF32 Gram on GPUs; no effect on the CPU).
    Includes the factor C0 = 1/(2 sqrt(pi)), like the paper's code.
    """
    check_pair(x, y)
    gamma = _sample_gamma(x, y) if isinstance(gamma, str) and gamma == "silverman" else check_gamma(gamma)
    check_precision(precision)
    be = backends.resolve(backend, x)
    xc, yc = _for_backend(be, x, y)
    n, m = x.shape[0], y.shape[0]
    total = (be.self_sum(xc, gamma, precision) / (n * n) + be.self_sum(yc, gamma, precision) / (m * m)
             - 2.0 * be.cross_sum(xc, yc, gamma, precision) / (n * m))
    return (C0 * total).to(torch.promote_types(x.dtype, y.dtype))


def cw_normality(z: torch.Tensor, gamma: Optional[float] = None, backend: str = "auto",
                 precision: str = "default") -> torch.Tensor:
    """Squared Cramer-Wold distance of the sample z: (n, D) to N(0, I) -> 0-dim tensor.

    gamma: defaults to normality_gamma(n) = (4 / (3n))^0.4. Includes the factor C0 (the paper's
    code omits it here; we apply it so cw_normality and cw_distance share one scale).
    """
    check_sample("z", z)
    n, dim = z.shape
    gamma = normality_gamma(n) if gamma is None else check_gamma(gamma)
    check_precision(precision)
    be = backends.resolve(backend, z)
    (zc,) = _for_backend(be, z)
    pairs = be.self_sum(zc, gamma, precision) / (n * n)
    zd = z.double()
    to_prior = torch.rsqrt(gamma + 0.5 + zd.square().sum(1) / (2 * dim - 3)).mean()
    return (C0 * (pairs + (1.0 + gamma) ** -0.5 - 2.0 * to_prior)).to(z.dtype)
