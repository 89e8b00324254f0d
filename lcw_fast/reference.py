"""Materialising pure-PyTorch reference: the paper's code path, used by tests and benchmarks.

Every function here builds the full (n, m) matrix of squared distances, so memory grows as n * m.
With `exact=True` the distances are computed from differences (no Gram cancellation); with
`exact=False` they come from `torch.cdist(x, y) ** 2` at PyTorch's default settings, which is what
the paper's public code does and what the benchmarks compare against.
"""
import math

import torch

C0 = 1.0 / (2.0 * math.sqrt(math.pi))


def pairwise_sq_dists(x: torch.Tensor, y: torch.Tensor, exact: bool = True) -> torch.Tensor:
    """(n, D), (m, D) -> (n, m) matrix of |x_i - y_j|^2."""
    mode = "donot_use_mm_for_euclid_dist" if exact else "use_mm_for_euclid_dist_if_necessary"
    return torch.cdist(x, y, compute_mode=mode) ** 2


def kernel(d: torch.Tensor, gamma: float, dim: int) -> torch.Tensor:
    """k(d) = (gamma + d / (2D - 3))^(-1/2), elementwise on squared distances d."""
    return torch.rsqrt(gamma + d / (2 * dim - 3))


def kernel_sum(x: torch.Tensor, y: torch.Tensor, gamma: float, exact: bool = True) -> torch.Tensor:
    """sum_ij k(|x_i - y_j|^2) -> 0-dim tensor."""
    return kernel(pairwise_sq_dists(x, y, exact), gamma, x.shape[1]).sum()


def cw_distance(x: torch.Tensor, y: torch.Tensor, gamma: float, exact: bool = True) -> torch.Tensor:
    """C0 * [mean k(|xi-xj|^2) + mean k(|yi-yj|^2) - 2 mean k(|xi-yj|^2)] -> 0-dim tensor."""
    n, m = x.shape[0], y.shape[0]
    return C0 * (kernel_sum(x, x, gamma, exact) / n**2 + kernel_sum(y, y, gamma, exact) / m**2
                 - 2.0 * kernel_sum(x, y, gamma, exact) / (n * m))


def cw_normality(z: torch.Tensor, gamma: float, exact: bool = True) -> torch.Tensor:
    """C0 * [mean k(|zi-zj|^2) + (1+gamma)^(-1/2) - 2 mean_i (gamma + 1/2 + |zi|^2/c)^(-1/2)]."""
    n, dim = z.shape
    c = 2 * dim - 3
    to_prior = torch.rsqrt(gamma + 0.5 + (z * z).sum(1) / c).mean()
    return C0 * (kernel_sum(z, z, gamma, exact) / n**2 + (1.0 + gamma) ** -0.5 - 2.0 * to_prior)
