"""Pure-PyTorch references, used by tests and benchmarks.

The plain functions are the materialising reference, the paper's code path: they build the full
(n, m) matrix of squared distances, so memory grows as n * m (and the backward of the exact cdist
as n * m * D).
With `exact=True` the distances are computed from differences (no Gram cancellation); with
`exact=False` they come from `torch.cdist(x, y) ** 2` at PyTorch's default settings, which is what
the paper's public code does and what the benchmarks compare against.

The blocked functions (`*_blocked`) are the float64 reference the kernels are tested against, in
bounded memory; `errors` and the `*_scale` functions are the one way results are compared with it.
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


def _distance_from_sums(pair_sum, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """C0 * [mean k(|xi-xj|^2) + mean k(|yi-yj|^2) - 2 mean k(|xi-yj|^2)], pair_sum(a, b) = sum_ij k."""
    n, m = x.shape[0], y.shape[0]
    return C0 * (pair_sum(x, x) / n**2 + pair_sum(y, y) / m**2 - 2.0 * pair_sum(x, y) / (n * m))


def _normality_from_sum(self_sum: torch.Tensor, z: torch.Tensor, gamma: float) -> torch.Tensor:
    """C0 * [self_sum / n^2 + (1+gamma)^(-1/2) - 2 mean_i (gamma + 1/2 + |zi|^2/c)^(-1/2)]."""
    n, dim = z.shape
    to_prior = torch.rsqrt(gamma + 0.5 + z.square().sum(1) / (2 * dim - 3)).mean()
    return C0 * (self_sum / n**2 + (1.0 + gamma) ** -0.5 - 2.0 * to_prior)


def cw_distance(x: torch.Tensor, y: torch.Tensor, gamma: float, exact: bool = True) -> torch.Tensor:
    """C0 * [mean k(|xi-xj|^2) + mean k(|yi-yj|^2) - 2 mean k(|xi-yj|^2)] -> 0-dim tensor."""
    return _distance_from_sums(lambda a, b: kernel_sum(a, b, gamma, exact), x, y)


def cw_normality(z: torch.Tensor, gamma: float, exact: bool = True) -> torch.Tensor:
    """C0 * [mean k(|zi-zj|^2) + (1+gamma)^(-1/2) - 2 mean_i (gamma + 1/2 + |zi|^2/c)^(-1/2)]."""
    return _normality_from_sum(kernel_sum(z, z, gamma, exact), z, gamma)


# Bounded-memory float64 reference: the same sums and gradients, one (block, block) tile at a time.

BLOCK = 512


class _BlockedKernelSum(torch.autograd.Function):
    """sum_ij k(|x_i - y_j|^2) in float64 over (block, block) tiles; backward recomputes the tiles.

    Extra memory O(block^2 + (n + m) D): no (n, m) or (n, m, D) buffer is ever built. Distances come
    from float64 Gram tiles of the inputs centred by their common mean (translation invariance).
    """

    @staticmethod
    def forward(ctx, x, y, gamma, block):
        ctx.save_for_backward(x, y)
        ctx.gamma, ctx.block = gamma, block
        total = x.new_zeros((), dtype=torch.float64)
        for _, _, k, _ in _tiles(x, y, gamma, block, with_weights=False):
            total += k.sum()
        return total

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        need_x, need_y = ctx.needs_input_grad[:2]
        gx = torch.zeros_like(x, dtype=torch.float64) if need_x else None
        gy = torch.zeros_like(y, dtype=torch.float64) if need_y else None
        for (i, xi), (j, yj), _, w in _tiles(x, y, ctx.gamma, ctx.block, with_weights=True):
            # d/dx_i sum_j k(d_ij) = 2 sum_j w_ij (x_i - y_j), w = k'(d)
            if need_x:
                gx[i:i + len(xi)] += 2.0 * (xi * w.sum(1, keepdim=True) - w @ yj)
            if need_y:
                gy[j:j + len(yj)] += 2.0 * (yj * w.sum(0).unsqueeze(1) - w.t() @ xi)
        grad = grad.double()
        return (None if gx is None else (gx * grad).to(x.dtype),
                None if gy is None else (gy * grad).to(y.dtype), None, None)


def _tiles(x, y, gamma, block, with_weights):
    """Yields ((i, x tile), (j, y tile), k tile, w tile or None) over every (block, block) tile, float64."""
    xd, yd = x.detach().double(), y.detach().double()
    mean = (xd.sum(0) + yd.sum(0)) / (len(xd) + len(yd))
    xd, yd = xd - mean, yd - mean
    c = 2 * x.shape[1] - 3
    x_sq, y_sq = xd.square().sum(1), yd.square().sum(1)
    for i in range(0, len(xd), block):
        xi = xd[i:i + block]
        for j in range(0, len(yd), block):
            yj = yd[j:j + block]
            d = (x_sq[i:i + block, None] + y_sq[None, j:j + block] - 2.0 * xi @ yj.t()).clamp_min_(0.0)
            k = torch.rsqrt(gamma + d / c)
            w = -k.pow(3) / (2 * c) if with_weights else None
            yield (i, xi), (j, yj), k, w


def kernel_sum_blocked(x: torch.Tensor, y: torch.Tensor, gamma: float, block: int = BLOCK) -> torch.Tensor:
    """sum_ij k(|x_i - y_j|^2) -> 0-dim float64, differentiable, extra memory O(block^2 + (n + m) D).

    Pass the same tensor twice for a self-sum: autograd adds the gradients of both arguments.
    """
    return _BlockedKernelSum.apply(x, y, float(gamma), int(block))


def cw_distance_blocked(x: torch.Tensor, y: torch.Tensor, gamma: float, block: int = BLOCK) -> torch.Tensor:
    """cw_distance in float64 with bounded memory (see kernel_sum_blocked) -> 0-dim float64."""
    return _distance_from_sums(lambda a, b: kernel_sum_blocked(a, b, gamma, block), x, y)


def cw_normality_blocked(z: torch.Tensor, gamma: float, block: int = BLOCK) -> torch.Tensor:
    """cw_normality in float64 with bounded memory (see kernel_sum_blocked) -> 0-dim float64."""
    return _normality_from_sum(kernel_sum_blocked(z, z, gamma, block), z.double(), gamma)


# Comparing a result with the reference: one error measure, and the unit of value errors.

def errors(actual: torch.Tensor, expected: torch.Tensor):
    """(max absolute error, RMS error, relative L2 error) of actual against expected, in float64."""
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    diff = a - e
    if not diff.numel():
        return 0.0, 0.0, 0.0
    return (diff.abs().max().item(), diff.square().mean().sqrt().item(),
            (diff.norm() / e.norm().clamp_min(1e-300)).item())


def cw_distance_scale(x: torch.Tensor, y: torch.Tensor, gamma: float) -> float:
    """C0 times the sum of the magnitudes of cw_distance's three mean terms (the unit of value errors)."""
    x, y = x.detach(), y.detach()
    means = [kernel_sum_blocked(a, b, gamma) / (a.shape[0] * b.shape[0]) for a, b in ((x, x), (y, y), (x, y))]
    return C0 * (means[0] + means[1] + 2 * means[2]).item()


def cw_normality_scale(z: torch.Tensor, gamma: float) -> float:
    """C0 times the sum of the magnitudes of cw_normality's three terms (the unit of value errors)."""
    z = z.detach()
    n, dim = z.shape
    prior = torch.rsqrt(gamma + 0.5 + z.double().square().sum(1) / (2 * dim - 3)).mean().item()
    pairs = kernel_sum_blocked(z, z, gamma).item() / n**2
    return C0 * (pairs + (1 + gamma) ** -0.5 + 2 * prior)
