"""Sliced Wasserstein distance between two equal-size samples, the SW-Generator's loss.

    SW(x, y) = mean over P unit directions t and over the n ranks k of (sort(x t)_k - sort(y t)_k)^2

for x, y: (n, D): the squared 1-D Wasserstein-2 distance of the projections, averaged over directions,
as the authors' code computes it (gmum/lcw-generator, src/metrics/swd.py: directions drawn from
N(0, I) and normalised, 5,000 of them). The directions are processed `chunk` at a time and the value
and its gradients are accumulated per chunk, so memory is O(n (D + chunk)) however large P * n is
(autograd through torch.sort would keep every chunk's projections until the backward).
Gradient: d SW / d x_i = 2 / (P n) sum_t (x_i t - y_{pi_t(i)} t) t, with pi_t matching ranks; the same
with the signs swapped for y. Ties in the sort pick one of the equal-loss matchings (as torch.sort).
"""
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
import torch


def directions(count: int, dim: int, generator: Optional[torch.Generator] = None,
               dtype=torch.float32, device=None) -> torch.Tensor:
    """(count, dim) unit vectors, uniform on the sphere (normalised N(0, I) draws), on `device` (default:
    the generator's device, or the CPU without one). Drawn where they are used: a GPU step drawing them on
    the CPU would spend more time there than in its matrix products and sorts."""
    device = device if device is not None else (generator.device if generator is not None else "cpu")
    t = torch.randn(count, dim, generator=generator, dtype=torch.float64, device=device)
    return (t / t.norm(dim=1, keepdim=True)).to(dtype)


def sort_rows(a: torch.Tensor, with_index: bool):
    """Each row of a: (rows, n) sorted ascending -> (values (rows, n), index (rows, n) int64 or None).

    On the CPU numpy's sort (vectorised: on AVX-512 machines 3-5x faster than torch.sort for the
    (10 x 512, 4,000) float32 projections of a batch-4,000 step), its rows split over
    torch.get_num_threads() threads (numpy sorts without the GIL); elsewhere torch.sort. NaN sorts last
    in both.
    """
    if a.device.type != "cpu":
        values, index = torch.sort(a, dim=1)
        return values, (index if with_index else None)
    rows = a.numpy()
    values = np.empty_like(rows)
    index = np.empty(rows.shape, dtype=np.int64) if with_index else None

    def sort_block(lo: int, hi: int) -> None:
        if with_index:
            index[lo:hi] = np.argsort(rows[lo:hi], axis=1)
            values[lo:hi] = np.take_along_axis(rows[lo:hi], index[lo:hi], axis=1)
        else:
            values[lo:hi] = np.sort(rows[lo:hi], axis=1)

    workers = min(torch.get_num_threads(), len(rows))
    if workers > 1:
        bounds = [len(rows) * k // workers for k in range(workers + 1)]
        list(_pool(workers).map(sort_block, bounds[:-1], bounds[1:]))
    else:
        sort_block(0, len(rows))
    return torch.from_numpy(values), (torch.from_numpy(index) if with_index else None)


@functools.lru_cache(maxsize=None)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="sort_rows")


def _value_and_grads(x, y, projections: int, generator, chunk: int, fixed: Optional[torch.Tensor],
                     need_x: bool, need_y: bool):
    n, dim = x.shape
    value = torch.zeros((), dtype=torch.float64, device=x.device)
    gx = torch.zeros_like(x) if need_x else None
    gy = torch.zeros_like(y) if need_y else None
    scale = 1.0 / (projections * n)
    drawn_on = generator.device if generator is not None else x.device
    for start in range(0, projections, chunk):
        count = min(chunk, projections - start)
        t = fixed[start:start + count] if fixed is not None else directions(count, dim, generator, x.dtype, drawn_on)
        t = t.to(device=x.device, dtype=x.dtype)
        px, ix = sort_rows(t @ x.T, need_x)  # (count, n): one row of sorted projections per direction
        py, iy = sort_rows(t @ y.T, need_y)
        diff = px - py
        value += diff.double().square().sum()
        # the rank-k samples of x and y get +-2 diff_k t
        if need_x:
            gx += torch.zeros_like(diff).scatter_(1, ix, diff).T @ t
        if need_y:
            gy -= torch.zeros_like(diff).scatter_(1, iy, diff).T @ t
    for g in (gx, gy):
        if g is not None:
            g.mul_(2 * scale)
    return value * scale, gx, gy


class _SlicedWasserstein(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, projections, generator, chunk, fixed):
        value, gx, gy = _value_and_grads(x.detach(), y.detach(), projections, generator, chunk, fixed,
                                         *ctx.needs_input_grad[:2])
        ctx.save_for_backward(gx, gy)
        return value.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        gx, gy = ctx.saved_tensors
        return (grad * gx if gx is not None else None, grad * gy if gy is not None else None, None, None, None, None)


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, projections: int = 5000, *,
                       generator: Optional[torch.Generator] = None, chunk: int = 512,
                       fixed_directions: Optional[torch.Tensor] = None) -> torch.Tensor:
    """SW(x, y) for x, y: (n, D) of one floating dtype -> 0-dim tensor in that dtype, differentiable.

    projections: P, the number of random unit directions, drawn chunk by chunk from `generator` (a
    torch.Generator on the CPU or on x's device, where they are drawn; None: x's device's global one);
    chunk: directions per block of work (memory O(n * chunk));
    fixed_directions: (P, D) directions to use instead (used as given, not normalised).
    """
    if x.dim() != 2 or y.dim() != 2:
        raise ValueError(f"x and y must be 2-D (n, D), got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (equal sample sizes), got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    if x.dtype != y.dtype or not x.is_floating_point():
        raise ValueError(f"x and y must share one floating dtype, got {x.dtype} and {y.dtype}")
    if fixed_directions is not None:
        if fixed_directions.dim() != 2 or fixed_directions.shape[1] != x.shape[1]:
            raise ValueError(f"fixed_directions must be (P, {x.shape[1]}), got {tuple(fixed_directions.shape)}")
        projections = fixed_directions.shape[0]
    if not isinstance(projections, int) or projections < 1:
        raise ValueError(f"projections must be a positive integer, got {projections!r}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    return _SlicedWasserstein.apply(x, y, projections, generator, chunk, fixed_directions)
