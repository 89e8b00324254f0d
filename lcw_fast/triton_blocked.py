"""Large-D Triton kernels (D > 256): the Gram over chunks of D, then W.Y as a second tensor-core product.

  value      _sum_kernel: program (i, s) sums k over row tile i and column tiles s, s + S, ... (a self-sum:
             tiles j >= i, off-diagonal ones counted twice) into one float64 partial; partials are summed
             in float64 (deterministic, no atomics).
  gradients  blocks of pairs of at most LCW_FAST_SCRATCH_BYTES of float32 weights: _weights_kernel writes
             w = k'(d) for the block (and its value partials, so the value comes from the same visit),
             then _wy_kernel adds scale * (rowsum(W) X_A - W Y_B) to the rows of the block and, for the
             columns' gradient, the same with W^T (the transposed strides). _wy_kernel multiplies on tensor
             cores at the launch's precision (3xTF32 by default; for bf16/fp16 inputs a hi/lo split of W
             with the inputs exact). A self-sum visits the blocks B >= A, several per row for n > 1024
             (so the triangle saves work), and a block off the diagonal updates both of its sides.
Each block's launches run in order on one stream and each program owns its output rows: deterministic.
"""
import torch
import triton
import triton.language as tl

from .triton_common import (Launch, clamp_dists, configs, cw_k, dot_weights, gamma_inv_c, gram_tile, new_buffer,
                            scratch_bytes, split_weights)

# (BLOCK_M, BLOCK_N, num_warps, num_stages, {BLOCK_K}) for 32/16-bit and for 64-bit inputs: the configs that
# compile for sm_90 without register spills (tests/triton_sm90_compile.py --realistic).
K32, K16 = {"BLOCK_K": 32}, {"BLOCK_K": 16}
SUM_SHAPES = {"fp32": ((128, 128, 8, 3, K32), (64, 64, 4, 3, {"BLOCK_K": 64})), "fp64": ((64, 64, 4, 2, K16),)}
WEIGHT_SHAPES = {"fp32": ((128, 128, 8, 3, K32), (128, 64, 8, 3, K32)), "fp64": ((64, 64, 4, 2, K16),)}
# _wy_kernel: BLOCK_M rows of W times a [BLOCK_K, BLOCK_N] slice of Y (BLOCK_N columns of D).
WY_SHAPES = {"fp32": ((128, 64, 4, 4, K32), (64, 128, 8, 3, K32)), "fp64": ((64, 64, 8, 2, K16),)}


def _tuned(table):
    """(configs, prune): the configs of both lists, pruned to the inputs' list at launch."""
    all_configs = configs(table["fp32"] + table["fp64"])

    def prune(candidates, named_args, **kwargs):
        wanted = table["fp64" if kwargs["COMPUTE"] == tl.float64 else "fp32"]
        keys = {(bm, bn, w, s, extra["BLOCK_K"]) for bm, bn, w, s, extra in wanted}
        return [c for c in candidates if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages,
                                          c.kwargs["BLOCK_K"]) in keys] or candidates

    return all_configs, {"early_config_prune": prune}


(SUM_CONFIGS, _SUM_PRUNE), (WEIGHT_CONFIGS, _WEIGHT_PRUNE), (WY_CONFIGS, _WY_PRUNE) = (
    _tuned(SUM_SHAPES), _tuned(WEIGHT_SHAPES), _tuned(WY_SHAPES))


def default_configs(kernel, fp64: bool):
    """The configs the autotuner may pick for a kernel of this module and the inputs' dtype."""
    prune = {_sum_kernel: _SUM_PRUNE, _weights_kernel: _WEIGHT_PRUNE, _wy_kernel: _WY_PRUNE}[kernel]
    return prune["early_config_prune"](kernel.configs, {}, COMPUTE=tl.float64 if fp64 else tl.float32)


MIN_SELF_BLOCK = 1024  # a self-sum's block side is at least this, and about n / 8 above 8192


@triton.jit
def _sq_dists(xh_ptr, xl_ptr, xn_ptr, yh_ptr, yl_ptr, yn_ptr, row0, col0, n, m, D, SELF: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, STAGES: tl.constexpr,
              SPLIT: tl.constexpr, PRECISION: tl.constexpr, COMPUTE: tl.constexpr):
    """[BLOCK_M, BLOCK_N] squared distances of rows row0.. to columns col0.. (int64) of contiguous (n, D)
    and (m, D) samples x = xh + xl, y = yh + yl with squared norms xn, yn; the Gram by tl.dot over D."""
    rows, cols = row0 + tl.arange(0, BLOCK_M), col0 + tl.arange(0, BLOCK_N)
    rmask, cmask = rows < n, cols < m
    # Rows past the end repeat the last row (finite; clamp_dists gives them d = +Inf): no row masks.
    x_off = row0 * D + tl.minimum(tl.arange(0, BLOCK_M), (n - 1 - row0).to(tl.int32))[:, None].to(tl.int64) * D
    y_off = col0 * D + tl.minimum(tl.arange(0, BLOCK_N), (m - 1 - col0).to(tl.int32))[:, None].to(tl.int64) * D
    gram = tl.zeros((BLOCK_M, BLOCK_N), dtype=COMPUTE)
    for k0 in tl.range(0, D, BLOCK_K, num_stages=STAGES):
        ks = k0 + tl.arange(0, BLOCK_K)
        kmask = (ks < D)[None, :]
        xh = tl.load(xh_ptr + x_off + ks[None, :], mask=kmask, other=0.0)
        yh = tl.load(yh_ptr + y_off + ks[None, :], mask=kmask, other=0.0)
        if SPLIT:
            xl = tl.load(xl_ptr + x_off + ks[None, :], mask=kmask, other=0.0)
            yl = tl.load(yl_ptr + y_off + ks[None, :], mask=kmask, other=0.0)
            gram = gram_tile(xh, xl, yh, yl, gram, SPLIT, PRECISION)
        else:
            gram = gram_tile(xh, xh, yh, yh, gram, SPLIT, PRECISION)
    xn = tl.load(xn_ptr + rows, mask=rmask, other=0.0)
    yn = tl.load(yn_ptr + cols, mask=cmask, other=0.0)
    return clamp_dists(xn, yn, gram, row0, col0, rmask, cmask, SELF)


@triton.autotune(configs=SUM_CONFIGS, key=["D", "SELF", "PRECISION", "SPLIT", "size_bucket"], prune_configs_by=_SUM_PRUNE)
@triton.jit
def _sum_kernel(xh_ptr, xl_ptr, xn_ptr, yh_ptr, yl_ptr, yn_ptr, part_ptr, n, m, D, true_d, gamma_hi, gamma_lo,
                size_bucket,
                SELF: tl.constexpr, SPLIT: tl.constexpr, PRECISION: tl.constexpr, COMPUTE: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, STAGES: tl.constexpr):
    """Program (i, s) sums k over row tile i and column tiles j = j0 + s, j0 + s + S, ... (j0 = i for a
    self-sum, weighting off-diagonal tiles by 2) into part_ptr[i * S + s]."""
    gamma, inv_c = gamma_inv_c(gamma_hi, gamma_lo, true_d, COMPUTE)  # D: the padded dimension
    tile_m = tl.program_id(0)
    split, n_split = tl.program_id(1), tl.num_programs(1)
    row0 = tile_m.to(tl.int64) * BLOCK_M
    first = tile_m if SELF else 0
    total = tl.zeros((), dtype=tl.float64)
    for tile_n in range(first + split, tl.cdiv(m, BLOCK_N), n_split):
        col0 = tl.cast(tile_n, tl.int64) * BLOCK_N
        d = _sq_dists(xh_ptr, xl_ptr, xn_ptr, yh_ptr, yl_ptr, yn_ptr, row0, col0, n, m, D, SELF, BLOCK_M, BLOCK_N,
                      BLOCK_K, STAGES, SPLIT, PRECISION, COMPUTE)
        tile_sum = tl.sum(tl.sum(cw_k(d, gamma, inv_c), 1), 0).to(tl.float64)  # k = 0 on padding
        if SELF:
            tile_sum = tl.where(tile_n == tile_m, tile_sum, 2.0 * tile_sum)
        total += tile_sum
    tl.store(part_ptr + tile_m.to(tl.int64) * n_split + split, total)


@triton.autotune(configs=WEIGHT_CONFIGS, key=["D", "SELF", "PRECISION", "SPLIT", "size_bucket"],
                 prune_configs_by=_WEIGHT_PRUNE)
@triton.jit
def _weights_kernel(xh_ptr, xl_ptr, xn_ptr, yh_ptr, yl_ptr, yn_ptr, w_ptr, part_ptr, row0, col0, n, m, D, true_d, swn,
                    gamma_hi, gamma_lo, value_weight, size_bucket,
                    SELF: tl.constexpr, SPLIT: tl.constexpr, PRECISION: tl.constexpr, COMPUTE: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, STAGES: tl.constexpr):
    """w[i - row0, j - col0] = k'(d_ij) for rows [row0, n) and columns [col0, m) of this launch, and
    part[program] = value_weight * sum of k over the program's tile (float64)."""
    gamma, inv_c = gamma_inv_c(gamma_hi, gamma_lo, true_d, COMPUTE)  # D: the padded dimension
    tile_row0 = row0 + tl.program_id(0).to(tl.int64) * BLOCK_M
    tile_col0 = col0 + tl.program_id(1).to(tl.int64) * BLOCK_N
    rows, cols = tile_row0 + tl.arange(0, BLOCK_M), tile_col0 + tl.arange(0, BLOCK_N)
    d = _sq_dists(xh_ptr, xl_ptr, xn_ptr, yh_ptr, yl_ptr, yn_ptr, tile_row0, tile_col0, n, m, D, SELF, BLOCK_M,
                  BLOCK_N, BLOCK_K, STAGES, SPLIT, PRECISION, COMPUTE)
    k = cw_k(d, gamma, inv_c)
    tl.store(w_ptr + (rows - row0)[:, None] * swn + (cols - col0)[None, :], (-0.5 * inv_c) * k * k * k,
             mask=(rows < n)[:, None] & (cols < m)[None, :])
    tl.store(part_ptr + tl.program_id(0) * tl.num_programs(1) + tl.program_id(1),
             value_weight * tl.sum(tl.sum(k, 1), 0).to(tl.float64))


@triton.autotune(configs=WY_CONFIGS, key=["D", "PRECISION", "SPLIT", "size_bucket"], restore_value=["out_ptr"],
                 prune_configs_by=_WY_PRUNE)
@triton.jit
def _wy_kernel(w_ptr, swr, swc, ah_ptr, al_ptr, b_ptr, sbn, sbd, out_ptr, rows, inner, D, scale, size_bucket,
               SPLIT: tl.constexpr, PRECISION: tl.constexpr, COMPUTE: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, STAGES: tl.constexpr):
    """out[i, :] += scale * (sum_j w_ij b_i - sum_j w_ij a_j) for i < rows, j < inner; w: (rows, inner)
    with strides (swr, swc), a = ah + al: (inner, D) contiguous, b: (rows, D), out: (rows, D) contiguous.
    Program (i, c): rows tile i, columns c * BLOCK_N.. of D."""
    r = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    c = tl.program_id(1).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask, cmask = r < rows, c < D
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=COMPUTE)
    w_sum = tl.zeros((BLOCK_M,), dtype=COMPUTE)
    for k0 in tl.range(0, inner, BLOCK_K, num_stages=STAGES):
        ks = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
        kmask = ks < inner
        w = tl.load(w_ptr + r[:, None] * swr + ks[None, :] * swc, mask=rmask[:, None] & kmask[None, :], other=0.0)
        a_off = ks[:, None] * D + c[None, :]
        a_mask = kmask[:, None] & cmask[None, :]
        ah = tl.load(ah_ptr + a_off, mask=a_mask, other=0.0)
        al = tl.load(al_ptr + a_off, mask=a_mask, other=0.0) if SPLIT else ah
        w_sum += tl.sum(w, 1)
        w_hi, w_lo = split_weights(w, ah, SPLIT)
        acc = dot_weights(w_hi, w_lo, ah, al, acc, SPLIT, PRECISION)
    mask = rmask[:, None] & cmask[None, :]
    b = tl.load(b_ptr + r[:, None] * sbn + c[None, :] * sbd, mask=mask, other=0.0).to(COMPUTE)
    ptrs = out_ptr + r[:, None] * D + c[None, :]
    tl.store(ptrs, tl.load(ptrs, mask=mask) + scale * (w_sum[:, None] * b - acc), mask=mask)


def _sum_grid(n, m, block, target):
    row_tiles, col_tiles = triton.cdiv(n, block), triton.cdiv(m, block)
    return row_tiles, min(col_tiles, max(1, triton.cdiv(target, row_tiles)))


def blocked_sum(launch: Launch):
    """(value,) of a sum with D > 256."""
    x, n, m, dim = launch.x, launch.n, launch.m, launch.pdim
    x_parts = launch.operands(x)
    y_parts = x_parts if launch.self_sum else launch.operands(launch.y)
    target = launch.target_programs()
    grids = [_sum_grid(n, m, c.kwargs["BLOCK_M"], target) for c in SUM_CONFIGS]
    partials = new_buffer((max(a * b for a, b in grids),), torch.float64, x.device)
    with launch.device_guard():
        _sum_kernel[lambda meta: _sum_grid(n, m, meta["BLOCK_M"], target)](
            *x_parts, *y_parts, partials, n, m, dim, launch.dim, *launch.gamma_split, launch.bucket, SELF=launch.self_sum,
            SPLIT=launch.split, PRECISION=launch.dot_precision, COMPUTE=launch.compute)
    row_tiles, split = _sum_grid(n, m, _sum_kernel.best_config.kwargs["BLOCK_M"], target)
    return (partials[: row_tiles * split].sum(),)


def block_sides(n, m, self_sum, budget, itemsize):
    """(rows, cols) of a block of weights: rows * cols * itemsize <= budget; square for a self-sum, about
    n / 8 on a side (at least MIN_SELF_BLOCK) so the triangle of blocks skips work."""
    if self_sum:
        side = max(1, min(n, int((budget // itemsize) ** 0.5)))
        side = min(side, max(MIN_SELF_BLOCK, triton.cdiv(triton.cdiv(n, 8), 128) * 128))
        return side, side
    cols = min(m, max(1, budget // (itemsize * 128)))
    return min(n, max(1, budget // (itemsize * cols))), cols


def _add_wy(launch, w, a_parts, b, out, scale, transposed):
    """out += scale * (rowsum(W) b - W a), W = w or w^T, a = a_parts[0] + a_parts[1]."""
    swr, swc = (w.stride(1), w.stride(0)) if transposed else w.stride()
    rows, inner = out.shape[0], a_parts[0].shape[0]
    _wy_kernel[lambda meta: (triton.cdiv(rows, meta["BLOCK_M"]), triton.cdiv(launch.pdim, meta["BLOCK_N"]))](
        w, swr, swc, *a_parts, b, b.stride(0), b.stride(1), out, rows, inner, launch.pdim, scale, launch.bucket,
        SPLIT=launch.split, PRECISION=launch.dot_precision, COMPUTE=launch.compute)


def blocked_value_grad(launch: Launch, grad: str):
    """(value, grad_x) for grad "x", (value, grad_x, grad_y) for "both" (a self-sum: (value, grad)); memory
    O((n + m) D) plus the weights block."""
    n, m, dim = launch.n, launch.m, launch.pdim
    acc, self_sum = launch.acc_dtype, launch.self_sum
    x_parts = launch.operands(launch.x)
    y_parts = x_parts if self_sum else launch.operands(launch.y)
    x, y = launch.padded(launch.x), launch.padded(launch.y)
    rows_per, cols_per = block_sides(n, m, self_sum, scratch_bytes(), acc.itemsize)
    scale = 4.0 if self_sum else 2.0
    both = grad == "both" and not self_sum
    gx = torch.zeros((n, dim), dtype=acc, device=x.device)
    gy = torch.zeros((m, dim), dtype=acc, device=x.device) if both else None
    scratch = new_buffer((rows_per, cols_per), acc, x.device)
    min_tile = min(c.kwargs["BLOCK_M"] for c in WEIGHT_CONFIGS), min(c.kwargs["BLOCK_N"] for c in WEIGHT_CONFIGS)
    parts = new_buffer((triton.cdiv(rows_per, min_tile[0]) * triton.cdiv(cols_per, min_tile[1]),), torch.float64,
                       x.device)
    value = torch.zeros((), dtype=torch.float64, device=x.device)
    with launch.device_guard():
        for r0 in range(0, n, rows_per):
            for c0 in range(r0 if self_sum else 0, m, cols_per):
                r1, c1 = min(n, r0 + rows_per), min(m, c0 + cols_per)
                w = scratch[: r1 - r0, : c1 - c0]
                _weights_kernel[lambda meta: (triton.cdiv(r1 - r0, meta["BLOCK_M"]),
                                              triton.cdiv(c1 - c0, meta["BLOCK_N"]))](
                    *x_parts, *y_parts, w, parts, r0, c0, r1, c1, dim, launch.dim, w.stride(0), *launch.gamma_split,
                    2.0 if self_sum and r0 != c0 else 1.0, launch.bucket, SELF=self_sum, SPLIT=launch.split,
                    PRECISION=launch.dot_precision, COMPUTE=launch.compute)
                tile = _weights_kernel.best_config.kwargs
                value += parts[: triton.cdiv(r1 - r0, tile["BLOCK_M"]) * triton.cdiv(c1 - c0, tile["BLOCK_N"])].sum()
                xa, yb = [p[r0:r1] for p in x_parts[:2]], [p[c0:c1] for p in y_parts[:2]]
                _add_wy(launch, w, yb, x[r0:r1], gx[r0:r1], scale, transposed=False)
                if both:
                    _add_wy(launch, w, xa, y[c0:c1], gy[c0:c1], scale, transposed=True)
                elif self_sum and r0 != c0:
                    _add_wy(launch, w, xa, x[c0:c1], gx[c0:c1], scale, transposed=True)
    return (value, launch.crop(gx)) if gy is None else (value, launch.crop(gx), launch.crop(gy))
