"""Small-D Triton kernel: value and gradients of a kernel sum from one visit of each pair, for the
(dtype, gradients, D) of FUSED_SHAPES (D <= 256; the rest goes to triton_blocked).

The pairs are cut into bands: program (g, h) takes the rows of row band g against the columns of column
band h (a column split: many programs per row tile when n is small). For each 64-row tile of its band it
loads the tile and its norms once, then streams the band's column tiles through a pipelined loop
(tl.range with num_stages): the Gram tile by tl.dot, k and w = k'(d) in registers, sum_j w_ij and W.Y_J
in a register accumulator (a second tl.dot), and, when the columns need a gradient too, W^T.X_I for the
column tile. A self-sum runs only the bands h >= g and, on the diagonal band, the column tiles from the
row tile's own diagonal block on (BLOCK_N divides BLOCK_M), so every unordered pair is visited once; a
tile off the diagonal block updates both its rows and its columns, the diagonal block its rows only.

Determinism without float atomics: every program writes its gradient contributions into its own slot of
a scratch slab (slot h for the rows of band g, slot g for the columns of band h); only that program
writes those entries, read-modify-writing the column slot across its own row tiles. The slots are summed
in a fixed order afterwards (torch.sum), like the per-program float64 value partials.
  cross, grad wrt x:   slab_x[H, n, D]
  cross, both grads:   slab_x[H, n, D] and slab_y[G, m, D]
  self-sum:            slab[B + 1, n, D]: for band b, row slots h - b (h >= b) and column slots B - b + g
                       (g <= b), each written exactly once.
"""
import math

import torch
import triton
import triton.language as tl

from .triton_common import (Launch, clamp_dists, configs, cw_k, dot_weights, gamma_inv_c, gram_tile, new_buffer,
                            scratch_bytes, split_weights)

MAX_DIM = 256  # the kernel keeps [BLOCK_M, next_pow2(D)] accumulators in registers

# (BLOCK_M, BLOCK_N, num_warps, num_stages) by (inputs, gradients) and padded dimension BLOCK_D: the configs
# that compile for sm_90 without register spills (tests/triton_sm90_compile.py --realistic), the first of
# each list with BLOCK_N <= BLOCK_M for the self-sums. 64-row tiles for wgmma (M = 64 per warpgroup);
# float64 has no wgmma (DMMA mma.sync), smaller tiles. A (inputs, gradients, BLOCK_D) missing here goes
# to the blocked kernels of triton_blocked (Gram, weights block, W.Y), which have no register-resident
# [BLOCK_M, D] accumulator: 3xTF32 gradients for D > 32 and both-sided gradients in float32 spill here.
FUSED_SHAPES = {
    ("fp32", "none"): {16: ((64, 64, 4, 3), (64, 128, 4, 2)), 32: ((64, 64, 4, 3), (64, 128, 4, 2)),
                       64: ((64, 64, 4, 2), (64, 128, 4, 2)), 128: ((64, 64, 8, 2), (64, 32, 4, 2))},
    ("fp32", "x"): {16: ((64, 32, 4, 3), (64, 32, 4, 2)), 32: ((64, 32, 4, 2), (64, 32, 4, 3))},
    ("bf16", "none"): {16: ((64, 64, 4, 3), (64, 128, 4, 2)), 32: ((64, 64, 4, 3), (64, 128, 8, 2)),
                       64: ((64, 64, 4, 2), (64, 64, 8, 2)), 128: ((64, 64, 4, 2), (64, 64, 8, 2)),
                       256: ((64, 32, 4, 2),)},
    ("bf16", "x"): {16: ((64, 64, 4, 2), (64, 128, 4, 2)), 32: ((64, 64, 4, 2), (64, 64, 8, 2)),
                    64: ((64, 64, 4, 2), (64, 64, 8, 2)), 128: ((64, 32, 4, 2),)},
    ("bf16", "both"): {16: ((64, 64, 4, 2),), 32: ((64, 64, 4, 2),)},
    ("fp64", "none"): {16: ((32, 32, 4, 2), (32, 32, 8, 2)), 32: ((32, 32, 4, 2), (32, 32, 8, 2)),
                       64: ((32, 32, 4, 2), (32, 32, 8, 2)), 128: ((32, 32, 4, 2), (32, 32, 8, 2))},
    ("fp64", "x"): {16: ((32, 32, 4, 2), (32, 32, 8, 2)), 32: ((32, 16, 4, 2), (16, 16, 4, 2)),
                    64: ((32, 32, 8, 2), (32, 32, 4, 2)), 128: ((16, 32, 4, 2), (16, 16, 4, 2))},
    ("fp64", "both"): {16: ((16, 16, 2, 2), (16, 16, 8, 2))},
}


def _all_configs():
    return configs(sorted({s for table in FUSED_SHAPES.values() for v in table.values() for s in v}))


def block_d(dim: int) -> int:
    return max(16, triton.next_power_of_2(dim))


def kind(dtype) -> str:
    """The FUSED_SHAPES key of an input dtype (torch dtype or a name like "fp32")."""
    name = {torch.float64: "fp64", torch.float32: "fp32"}.get(dtype, dtype)
    return name if name in ("fp64", "fp32") else "bf16"


def takes(dtype, grad: str, dim: int) -> bool:
    """Whether the fused kernel computes a launch (else the blocked kernels do)."""
    return dim <= MAX_DIM and block_d(dim) in FUSED_SHAPES.get((kind(dtype), grad), {})


def default_configs(dtype, grad: str, block_dim: int, self_sum: bool, candidates=None):
    """The configs the autotuner may pick for a launch; a self-sum needs BLOCK_N <= BLOCK_M (its diagonal
    block of BLOCK_M columns is whole column tiles)."""
    candidates = FUSED_CONFIGS if candidates is None else candidates
    if len(candidates) == 1:
        return list(candidates)
    table = FUSED_SHAPES[(kind(dtype), grad)][block_dim]
    wanted = {(bm, bn, w, s) for bm, bn, w, s in table if bn <= bm or not self_sum}
    return [c for c in candidates
            if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) in wanted]


def _prune(candidates, named_args, **kwargs):
    grad = "both" if kwargs["GRAD_Y"] else "x" if kwargs["GRAD_X"] else "none"
    return default_configs(named_args["xh_ptr"].dtype, grad, kwargs["BLOCK_D"], kwargs["SELF"], candidates)


FUSED_CONFIGS = _all_configs()


@triton.jit
def _load_rows(base, first, count, ks, D, EVEN_D: tl.constexpr, BLOCK: tl.constexpr):
    """[BLOCK, BLOCK_D] rows first.. of a contiguous (count, D) sample at base; rows past the end repeat the
    last row (finite, ignored downstream), so only the padding of D needs a mask (int32 tile offsets)."""
    local = tl.minimum(tl.arange(0, BLOCK), (count - 1 - first).to(tl.int32))
    ptrs = base + first * D + (local[:, None] * D + ks[None, :])
    if EVEN_D:
        return tl.load(ptrs)
    else:
        return tl.load(ptrs, mask=(ks < D)[None, :], other=0.0)


@triton.autotune(configs=FUSED_CONFIGS, key=["D", "SELF", "GRAD_X", "GRAD_Y", "PRECISION", "SPLIT", "size_bucket"],
                 prune_configs_by={"early_config_prune": _prune})
@triton.jit
def _fused_kernel(xh_ptr, xl_ptr, xn_ptr, yh_ptr, yl_ptr, yn_ptr, part_ptr, gx_ptr, gy_ptr, n, m, D, true_d,
                  band_rows, band_cols, gamma_hi, gamma_lo, scale, size_bucket,
                  SELF: tl.constexpr, GRAD_X: tl.constexpr, GRAD_Y: tl.constexpr, BLOCK_D: tl.constexpr,
                  EVEN_D: tl.constexpr, SPLIT: tl.constexpr, PRECISION: tl.constexpr, COMPUTE: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, STAGES: tl.constexpr):
    """Program (g, h): value partial part[g * H + h] (float64) and, scaled by `scale`, the gradient
    contributions sum_j w_ij (x_i - y_j) of its rows into its gx slot and sum_i w_ij (y_j - x_i) of its
    columns into its gy slot (see the module docstring). x = xh + xl: (n, D) contiguous (xl = xh unless
    SPLIT), xn its squared norms; the same for y. D: the padded dimension, true_d the samples' one."""
    gamma, inv_c = gamma_inv_c(gamma_hi, gamma_lo, true_d, COMPUTE)
    band_m, band_n = tl.program_id(0), tl.program_id(1)
    n_bands_n = tl.num_programs(1)
    ks = tl.arange(0, BLOCK_D)
    kmask = ks < D
    row_lo = band_m.to(tl.int64) * band_rows
    row_hi = tl.minimum(row_lo + band_rows, n)
    col_lo = band_n.to(tl.int64) * band_cols
    col_hi = tl.minimum(col_lo + band_cols, m)
    if SELF:
        row_hi = tl.where(band_n < band_m, row_lo, row_hi)  # the lower-triangle bands do nothing
        gx_slot = band_n - band_m
        gy_slot = n_bands_n - band_n + band_m
    else:
        gx_slot = band_n
        gy_slot = band_m
    gx_base = gx_ptr + gx_slot.to(tl.int64) * n * D
    gy_base = gy_ptr + gy_slot.to(tl.int64) * m * D
    total = tl.zeros((), dtype=tl.float64)
    for row0 in range(row_lo, row_hi, BLOCK_M):
        rows = row0 + tl.arange(0, BLOCK_M)
        rmask = rows < n
        # The row tile (both halves) and its norms: loaded once for all the band's column tiles.
        xh = _load_rows(xh_ptr, row0, n, ks, D, EVEN_D, BLOCK_M)
        xl = _load_rows(xl_ptr, row0, n, ks, D, EVEN_D, BLOCK_M) if SPLIT else xh
        xn = tl.load(xn_ptr + rows, mask=rmask, other=0.0)
        k_sum = tl.zeros((BLOCK_M,), dtype=COMPUTE)
        w_sum = tl.zeros((BLOCK_M,), dtype=COMPUTE)
        wy = tl.zeros((BLOCK_M, BLOCK_D), dtype=COMPUTE)
        first_col = tl.maximum(col_lo, row0) if SELF else col_lo  # SELF: tiles J >= I (square tiles)
        for col0 in tl.range(first_col, col_hi, BLOCK_N, num_stages=STAGES):
            cols = col0 + tl.arange(0, BLOCK_N)
            cmask = cols < m
            yh = _load_rows(yh_ptr, col0, m, ks, D, EVEN_D, BLOCK_N)
            yl = _load_rows(yl_ptr, col0, m, ks, D, EVEN_D, BLOCK_N) if SPLIT else yh
            yn = tl.load(yn_ptr + cols, mask=cmask, other=0.0)
            gram = gram_tile(xh, xl, yh, yl, tl.zeros((BLOCK_M, BLOCK_N), dtype=COMPUTE), SPLIT, PRECISION)
            k = cw_k(clamp_dists(xn, yn, gram, row0, col0, rmask, cmask, SELF), gamma, inv_c)  # 0 on padding
            if SELF:
                k_sum += tl.where(col0 < row0 + BLOCK_M, 1.0, 2.0) * tl.sum(k, 1)  # off the diagonal: twice
            else:
                k_sum += tl.sum(k, 1)
            if GRAD_X or GRAD_Y:
                w = (-0.5 * inv_c) * k * k * k
                w_hi, w_lo = split_weights(w, yh, SPLIT)
                if GRAD_X:
                    w_sum += tl.sum(w, 1)
                    wy = dot_weights(w_hi, w_lo, yh, yl, wy, SPLIT, PRECISION)
                if GRAD_Y:
                    y = yh.to(COMPUTE) + yl.to(COMPUTE) if SPLIT else yh.to(COMPUTE)
                    # -(sum_i w_ij y_j - sum_i w_ij x_i), the product accumulating onto the first term
                    neg = dot_weights(tl.trans(w_hi), tl.trans(w_lo), xh, xl, -(tl.sum(w, 0)[:, None] * y), SPLIT,
                                      PRECISION)
                    ptrs = gy_base + col0 * D + (tl.arange(0, BLOCK_N)[:, None] * D + ks[None, :])
                    out_mask = cmask[:, None] & kmask[None, :]
                    # The first row tile of the band stores, the later ones add (this program owns the slot).
                    part = tl.load(ptrs, mask=out_mask & (row0 != row_lo), other=0.0)
                    if SELF:
                        neg = tl.where(col0 < row0 + BLOCK_M, 0.0, neg)  # the diagonal block: its rows hold it
                    tl.store(ptrs, part - scale * neg, mask=out_mask)
        total += tl.sum(k_sum, 0).to(tl.float64)
        if GRAD_X:
            x = _load_rows(xh_ptr, row0, n, ks, D, EVEN_D, BLOCK_M).to(COMPUTE)
            if SPLIT:
                x += _load_rows(xl_ptr, row0, n, ks, D, EVEN_D, BLOCK_M)
            ptrs = gx_base + row0 * D + (tl.arange(0, BLOCK_M)[:, None] * D + ks[None, :])
            tl.store(ptrs, scale * (w_sum[:, None] * x - wy), mask=rmask[:, None] & kmask[None, :])
        if GRAD_Y:
            tl.debug_barrier()  # the next row tile reads the column slot this one wrote (other threads)
    tl.store(part_ptr + band_m * n_bands_n + band_n, total)


def _quantum() -> int:
    """Band sizes are multiples of every tile side of the tables, so bands never split a tile."""
    return max(max(bm, bn) for table in FUSED_SHAPES.values() for v in table.values() for bm, bn, _, _ in v)


def bands(n, m, dim, self_sum, grad, target, budget, itemsize=4):
    """(band_rows, band_cols, G, H): G x H programs, about `target` of them, slabs within `budget` bytes.

    grad: "none" (value only), "x" (the rows' gradient) or "both" (rows and columns; a self-sum's)."""
    q = _quantum()
    row_tiles, col_tiles = triton.cdiv(n, q), triton.cdiv(m, q)
    slab = itemsize * dim
    if self_sum:
        want = max(1, math.isqrt(2 * target))  # B (B + 1) / 2 programs
        if grad != "none":
            want = min(want, max(1, budget // (slab * n) - 1))  # B + 1 slots
        side = triton.cdiv(row_tiles, min(row_tiles, want)) * q
        return side, side, triton.cdiv(n, side), triton.cdiv(n, side)
    if grad == "both":
        rows_split = min(row_tiles, max(1, math.isqrt(target)))
        cols_split = min(col_tiles, triton.cdiv(target, rows_split))
        while rows_split * slab * m + cols_split * slab * n > budget and rows_split * cols_split > 1:
            if rows_split > 1 and (rows_split * m >= cols_split * n or cols_split == 1):
                rows_split -= 1
            else:
                cols_split -= 1
    else:
        rows_split = row_tiles
        cols_split = min(col_tiles, max(1, target // row_tiles))
        if grad == "x":
            cols_split = max(1, min(cols_split, budget // (slab * n)))
    band_rows = triton.cdiv(row_tiles, rows_split) * q
    band_cols = triton.cdiv(col_tiles, cols_split) * q
    return band_rows, band_cols, triton.cdiv(n, band_rows), triton.cdiv(m, band_cols)


def fused(launch: Launch, grad: str):
    """(value,) for grad "none", (value, grad_x) for "x", (value, grad_x, grad_y) for "both" (a self-sum:
    (value, grad)); the gradients in the accumulation dtype, before the non-finite fold."""
    n, m, dim = launch.n, launch.m, launch.pdim
    x_parts = launch.operands(launch.x)
    y_parts = x_parts if launch.self_sum else launch.operands(launch.y)
    self_sum = launch.self_sum
    band_rows, band_cols, g_count, h_count = bands(n, m, dim, self_sum, grad, launch.target_programs(),
                                                   scratch_bytes(), launch.acc_dtype.itemsize)
    device, acc = launch.x.device, launch.acc_dtype
    parts = new_buffer((g_count * h_count,), torch.float64, device)
    slab_x = new_buffer((h_count + self_sum, n, dim) if grad != "none" else (1,), acc, device)
    slab_y = slab_x if self_sum else new_buffer((g_count, m, dim) if grad == "both" else (1,), acc, device)
    with launch.device_guard():
        _fused_kernel[(g_count, h_count)](
            *x_parts, *y_parts, parts, slab_x, slab_y, n, m, dim, launch.dim, band_rows, band_cols, *launch.gamma_split,
            4.0 if self_sum else 2.0, launch.bucket, SELF=self_sum, GRAD_X=grad != "none", GRAD_Y=grad == "both",
            BLOCK_D=block_d(dim), EVEN_D=block_d(dim) == dim, SPLIT=launch.split, PRECISION=launch.dot_precision, COMPUTE=launch.compute)
    slabs = {"none": (), "x": (slab_x,), "both": (slab_x,) if self_sum else (slab_x, slab_y)}[grad]
    return (parts.sum(),) + tuple(launch.crop(s.sum(0)) for s in slabs)
