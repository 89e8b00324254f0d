"""Triton kernels for the CW kernel sums and their gradients, registered as torch.ops.lcw_fast_triton.

The same four ops as csrc/lcw_fast.cpp (see there and lcw_fast/ops.py for the exact semantics);
their fake kernels and autograd come from lcw_fast.ops. With c = 2D - 3, k(d) = (gamma + d/c)^(-1/2)
and w = k'(d) = -k(d)^3 / (2c):

  forward    d_ij = |x_i|^2 + |y_j|^2 - 2 x_i.y_j, clamped at 0 (exact 0 on a self-sum's diagonal),
             the Gram tile by tl.dot over chunks of D. Every program sums its tiles' k in float32
             per tile and float64 across tiles and writes one partial; the partials are summed in
             float64 (deterministic, no atomics). A self-sum visits upper-triangle tiles only.
  gradient   d/dx_i sum_j k(d_ij) = 2 (sum_j w_ij x_i - sum_j w_ij y_j); the self-sum counts each
             pair twice (x_i sits on both sides), hence the factor 4 in kernel_sum_self_grad.
             D <= 256: one program per block of rows holds sum_j w_ij and sum_j w_ij y_j in
             registers, looping over all y (no atomics, no scratch). D > 256: w is written for a
             bounded block of pairs into scratch (SCRATCH_BYTES) in float32 and multiplied by y with
             torch.matmul in float32 (at PyTorch's float32 matmul precision, IEEE unless
             torch.backends.cuda.matmul.allow_tf32 is set), also for half-precision inputs.

precision: the Gram tl.dot (and the fused gradient's w @ y) uses tf32x3 on the GPU in "default" mode
(float32-accurate) and plain TF32 in "fast" mode; the interpreter always computes in IEEE float32.
Half-precision inputs feed tl.dot as they are and accumulate in float32; float64 inputs compute in
float64 throughout (IEEE tl.dot). 64-bit offsets everywhere.
Set LCW_FAST_POISON=1 (or POISON = True) to fill outputs and scratch with NaN before each launch,
so a value that a kernel fails to write shows up in tests.
"""
import contextlib
import os

import torch
import triton
import triton.language as tl

from . import ops
from .backends import triton_interpreted
from .validation import check_pair, check_precision

POISON = os.environ.get("LCW_FAST_POISON", "0") == "1"
INTERPRETED = triton_interpreted()
MAX_FUSED_DIM = 256  # the fused gradient keeps a [BLOCK_M, next_pow2(D)] accumulator in registers
SCRATCH_BYTES = 256 * 2**20  # bound on the w scratch of the large-D gradient
_DOT_PRECISION = {"default": "tf32x3", "fast": "tf32"}


def _configs(*shapes):
    """triton.Config for each (BLOCK_M, BLOCK_N, num_warps, num_stages); one large tile when interpreted."""
    if INTERPRETED:
        shapes = ((64, 64, 1, 1),)
    return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s) for bm, bn, w, s in shapes]


# (BLOCK_M, BLOCK_N, num_warps, num_stages). The first of each list compiles for sm_90 without register
# spills in float32 default mode at D <= 64 (tests/triton_sm90_compile.py); the autotuner weighs the rest.
# Square tiles for the sums: a self-sum pairs row tile i with column tile j >= i.
# The interpreter tests run every GPU tile shape too (test_triton.py).
_GPU_SHAPES = {
    "sum": ((64, 64, 8, 2), (64, 64, 8, 3), (128, 128, 8, 2), (64, 64, 4, 2)),
    "grad": ((32, 32, 4, 2), (64, 32, 8, 2), (64, 64, 8, 2), (32, 64, 4, 2), (128, 64, 8, 2)),
    "weights": ((64, 64, 4, 3), (64, 64, 8, 2), (128, 128, 8, 2), (128, 64, 8, 2)),
}
_SUM_CONFIGS = _configs(*_GPU_SHAPES["sum"])
_GRAD_CONFIGS = _configs(*_GPU_SHAPES["grad"])
_WEIGHT_CONFIGS = _configs(*_GPU_SHAPES["weights"])


@triton.jit
def _gamma_inv_c(gamma_hi, gamma_lo, D, COMPUTE: tl.constexpr):
    # Python floats reach a kernel as float32: gamma arrives split in two so float64 keeps it whole.
    gamma = tl.cast(gamma_hi, COMPUTE) + tl.cast(gamma_lo, COMPUTE)
    inv_c = 1.0 / tl.cast(2 * D - 3, COMPUTE)
    return gamma, inv_c


@triton.jit
def _cw_k(d, gamma, inv_c):
    """k(d) = (gamma + d / c)^(-1/2)."""
    v = gamma + d * inv_c
    if v.dtype == tl.float64:
        # tl.rsqrt lowers float64 to PTX rsqrt.approx.f64, an approximation; sqrt.rn and div.rn are exact.
        return 1.0 / tl.sqrt(v)
    else:
        return tl.rsqrt(v)


@triton.jit
def _sq_dists(x_ptr, y_ptr, row0, col0, n, m, D, sxn, sxd, syn, syd, SELF: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
              COMPUTE: tl.constexpr):
    """[BLOCK_M, BLOCK_N] squared distances of rows row0.. to columns col0.. (int64), Gram by tl.dot."""
    rows, cols = row0 + tl.arange(0, BLOCK_M), col0 + tl.arange(0, BLOCK_N)
    rmask, cmask = rows < n, cols < m
    gram = tl.zeros((BLOCK_M, BLOCK_N), dtype=COMPUTE)
    xn = tl.zeros((BLOCK_M,), dtype=COMPUTE)
    yn = tl.zeros((BLOCK_N,), dtype=COMPUTE)
    for k0 in range(0, D, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
        kmask = ks < D
        x = tl.load(x_ptr + rows[:, None] * sxn + ks[None, :] * sxd, mask=rmask[:, None] & kmask[None, :], other=0.0)
        y = tl.load(y_ptr + cols[:, None] * syn + ks[None, :] * syd, mask=cmask[:, None] & kmask[None, :], other=0.0)
        gram = tl.dot(x, tl.trans(y), gram, input_precision=PRECISION, out_dtype=COMPUTE)
        xf, yf = x.to(COMPUTE), y.to(COMPUTE)
        xn += tl.sum(xf * xf, 1)
        yn += tl.sum(yf * yf, 1)
    return _clamp(xn, yn, gram, row0, col0, SELF)


@triton.jit
def _clamp(xn, yn, gram, row0, col0, SELF: tl.constexpr):
    """Squared distances from norms and Gram of rows row0 + i, columns col0 + j; SELF: same points."""
    # A point with an Inf coordinate has |x|^2 = Inf and may give d = +Inf (k = 0) for some partners;
    # x + 0 x turns that norm into NaN so every pair with a non-finite point is NaN.
    xn += 0.0 * xn
    yn += 0.0 * yn
    d = xn[:, None] + yn[None, :] - 2.0 * gram
    d = tl.where(d < 0.0, 0.0, d)  # not tl.maximum: that would turn NaN into 0
    if SELF:
        # 0 * |x_i|^2 is exactly 0 for finite points and NaN for NaN/Inf ones, which must propagate.
        # The diagonal i - j == col0 - row0, compared in int32 (the offset clamped outside the tile).
        offset = tl.minimum(tl.maximum(col0 - row0, -gram.shape[1]), gram.shape[0]).to(tl.int32)
        local = tl.arange(0, gram.shape[0])[:, None] - tl.arange(0, gram.shape[1])[None, :]
        d = tl.where(local == offset, 0.0 * xn[:, None], d)
    return d


@triton.autotune(configs=_SUM_CONFIGS, key=["D", "SELF", "PRECISION"])
@triton.jit
def _sum_kernel(x_ptr, y_ptr, part_ptr, n, m, D, sxn, sxd, syn, syd, gamma_hi, gamma_lo,
                SELF: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, COMPUTE: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Program (i, s) sums k over row tile i and column tiles j = j0 + s, j0 + s + S, ... (S programs
    per row tile; j0 = i for a self-sum, weighting off-diagonal tiles by 2) into part_ptr[i * S + s]."""
    gamma, inv_c = _gamma_inv_c(gamma_hi, gamma_lo, D, COMPUTE)
    tile_m = tl.program_id(0)
    split, n_split = tl.program_id(1), tl.num_programs(1)
    row0 = tile_m.to(tl.int64) * BLOCK_M
    rows = row0 + tl.arange(0, BLOCK_M)
    first = tile_m if SELF else 0
    total = tl.zeros((), dtype=tl.float64)
    for tile_n in range(first + split, tl.cdiv(m, BLOCK_N), n_split):
        col0 = tl.cast(tile_n, tl.int64) * BLOCK_N
        cols = col0 + tl.arange(0, BLOCK_N)
        d = _sq_dists(x_ptr, y_ptr, row0, col0, n, m, D, sxn, sxd, syn, syd, SELF, BLOCK_M, BLOCK_N, BLOCK_K,
                      PRECISION, COMPUTE)
        k = _cw_k(d, gamma, inv_c)
        k = tl.where((rows < n)[:, None] & (cols < m)[None, :], k, 0.0)
        tile_sum = tl.sum(tl.sum(k, 1), 0).to(tl.float64)
        if SELF:
            tile_sum = tl.where(tile_n == tile_m, tile_sum, 2.0 * tile_sum)
        total += tile_sum
    tl.store(part_ptr + tile_m.to(tl.int64) * n_split + split, total)


@triton.autotune(configs=_GRAD_CONFIGS, key=["D", "SELF", "PRECISION"])
@triton.jit
def _fused_grad_kernel(x_ptr, y_ptr, out_ptr, n, m, D, sxn, sxd, syn, syd, son, gamma_hi, gamma_lo, scale,
                       SELF: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr, COMPUTE: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """out[i] = scale * (sum_j w_ij x_i - sum_j w_ij y_j) for one block of rows, D <= BLOCK_D."""
    gamma, inv_c = _gamma_inv_c(gamma_hi, gamma_lo, D, COMPUTE)
    row0 = tl.program_id(0).to(tl.int64) * BLOCK_M
    rows = row0 + tl.arange(0, BLOCK_M)
    ks = tl.arange(0, BLOCK_D).to(tl.int64)
    rmask, kmask = rows < n, ks < D
    x = tl.load(x_ptr + rows[:, None] * sxn + ks[None, :] * sxd, mask=rmask[:, None] & kmask[None, :], other=0.0)
    xf = x.to(COMPUTE)
    xn = tl.sum(xf * xf, 1)
    w_sum = tl.zeros((BLOCK_M,), dtype=COMPUTE)
    wy = tl.zeros((BLOCK_M, BLOCK_D), dtype=COMPUTE)
    for col0 in range(0, m, BLOCK_N):
        cols = col0 + tl.arange(0, BLOCK_N).to(tl.int64)
        cmask = cols < m
        y = tl.load(y_ptr + cols[:, None] * syn + ks[None, :] * syd, mask=cmask[:, None] & kmask[None, :], other=0.0)
        yf = y.to(COMPUTE)
        gram = tl.dot(x, tl.trans(y), input_precision=PRECISION, out_dtype=COMPUTE)
        d = _clamp(xn, tl.sum(yf * yf, 1), gram, row0, col0, SELF)
        k = _cw_k(d, gamma, inv_c)
        w = tl.where(cmask[None, :], (-0.5 * inv_c) * k * k * k, 0.0)
        w_sum += tl.sum(w, 1)
        wy = tl.dot(w, yf, wy, input_precision=PRECISION, out_dtype=COMPUTE)
    out = scale * (w_sum[:, None] * xf - wy)
    tl.store(out_ptr + rows[:, None] * son + ks[None, :], out.to(out_ptr.dtype.element_ty),
             mask=rmask[:, None] & kmask[None, :])


@triton.autotune(configs=_WEIGHT_CONFIGS, key=["D", "SELF", "PRECISION"])
@triton.jit
def _weights_kernel(x_ptr, y_ptr, w_ptr, row0, col0, n, m, D, sxn, sxd, syn, syd, swn, gamma_hi, gamma_lo,
                    SELF: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, COMPUTE: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """w[i - row0, j - col0] = k'(d_ij) for rows [row0, n) and columns [col0, m) of this launch."""
    gamma, inv_c = _gamma_inv_c(gamma_hi, gamma_lo, D, COMPUTE)
    tile_row0 = row0 + tl.program_id(0).to(tl.int64) * BLOCK_M
    tile_col0 = col0 + tl.program_id(1).to(tl.int64) * BLOCK_N
    rows, cols = tile_row0 + tl.arange(0, BLOCK_M), tile_col0 + tl.arange(0, BLOCK_N)
    d = _sq_dists(x_ptr, y_ptr, tile_row0, tile_col0, n, m, D, sxn, sxd, syn, syd, SELF, BLOCK_M, BLOCK_N,
                  BLOCK_K, PRECISION, COMPUTE)
    k = _cw_k(d, gamma, inv_c)
    w = (-0.5 * inv_c) * k * k * k
    tl.store(w_ptr + (rows - row0)[:, None] * swn + (cols - col0)[None, :], w,
             mask=(rows < n)[:, None] & (cols < m)[None, :])


# ---------------------------------------------------------------------------------------------- launchers

def _new(shape, dtype, device):
    """An output or scratch buffer: uninitialised, or NaN-filled when POISON is set."""
    return torch.full(shape, float("nan"), dtype=dtype, device=device) if POISON else torch.empty(shape, dtype=dtype, device=device)


def _prepare(x, y, precision):
    """Common dtype, compute dtype, tl.dot precision and split gamma for a launch on (x, y)."""
    check_precision(precision)
    if x.device.type != "cuda" and not INTERPRETED:
        raise ValueError(f"the Triton backend needs CUDA tensors (or TRITON_INTERPRET=1), got x on {x.device}")
    check_pair(x, y)
    dtype = torch.promote_types(x.dtype, y.dtype)
    compute = tl.float64 if dtype == torch.float64 else tl.float32
    if INTERPRETED or compute == tl.float64:
        dot_precision = "ieee"
    else:
        dot_precision = _DOT_PRECISION[precision]
    return x.to(dtype), y.to(dtype), compute, dot_precision


def _on_device(x):
    """Triton launches on the current CUDA device, not the tensor's: make x's device current."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _split_gamma(gamma: float):
    hi = float(torch.tensor(gamma, dtype=torch.float32))
    return hi, gamma - hi


def _block_k(dim: int) -> int:
    return min(32, max(16, triton.next_power_of_2(dim)))


def _target_programs(device) -> int:
    """Programs wanted in flight: a few per SM on the GPU, one per row tile when interpreted."""
    if INTERPRETED:
        return 1
    return 4 * torch.cuda.get_device_properties(device).multi_processor_count


def _sum_grid(n, m, block, target):
    row_tiles, col_tiles = triton.cdiv(n, block), triton.cdiv(m, block)
    return row_tiles, min(col_tiles, max(1, triton.cdiv(target, row_tiles)))


def _sum(x, y, gamma, precision, self_sum):
    x, y, compute, dot_precision = _prepare(x, y, precision)
    n, m, dim = x.shape[0], y.shape[0], x.shape[1]
    target = _target_programs(x.device)
    grids = [_sum_grid(n, m, c.kwargs["BLOCK_M"], target) for c in _SUM_CONFIGS]
    partials = _new((max(a * b for a, b in grids),), torch.float64, x.device)
    with _on_device(x):
        _sum_kernel[lambda meta: _sum_grid(n, m, meta["BLOCK_M"], target)](
            x, y, partials, n, m, dim, x.stride(0), x.stride(1), y.stride(0), y.stride(1), *_split_gamma(gamma),
            SELF=self_sum, BLOCK_K=_block_k(dim), PRECISION=dot_precision, COMPUTE=compute)
    row_tiles, split = _sum_grid(n, m, _sum_kernel.best_config.kwargs["BLOCK_M"], target)
    return partials[: row_tiles * split].sum()


def _fused_grad(x, y, gamma, dot_precision, compute, scale, self_sum):
    n, m, dim = x.shape[0], y.shape[0], x.shape[1]
    out = _new((n, dim), x.dtype, x.device)
    _fused_grad_kernel[lambda meta: (triton.cdiv(n, meta["BLOCK_M"]),)](
        x, y, out, n, m, dim, x.stride(0), x.stride(1), y.stride(0), y.stride(1), out.stride(0),
        *_split_gamma(gamma), scale, SELF=self_sum, BLOCK_D=max(16, triton.next_power_of_2(dim)),
        PRECISION=dot_precision, COMPUTE=compute)
    return out


def _chunked_grad(x, y, gamma, dot_precision, compute, scale, self_sum):
    """Large D: w for blocks of at most SCRATCH_BYTES, times y by torch.matmul (memory O((n+m)D))."""
    n, m, dim = x.shape[0], y.shape[0], x.shape[1]
    acc_dtype = torch.float64 if compute == tl.float64 else torch.float32
    cols_per_chunk = min(m, max(1, SCRATCH_BYTES // (acc_dtype.itemsize * 128)))
    rows_per_chunk = min(n, max(1, SCRATCH_BYTES // (acc_dtype.itemsize * cols_per_chunk)))
    xs, ys = x.to(acc_dtype), y.to(acc_dtype)
    w_sum = torch.zeros(n, dtype=acc_dtype, device=x.device)
    wy = torch.zeros((n, dim), dtype=acc_dtype, device=x.device)
    scratch = _new((rows_per_chunk, cols_per_chunk), acc_dtype, x.device)
    gamma_hi, gamma_lo = _split_gamma(gamma)
    for row0 in range(0, n, rows_per_chunk):
        rows = min(rows_per_chunk, n - row0)
        for col0 in range(0, m, cols_per_chunk):
            cols = min(cols_per_chunk, m - col0)
            w = scratch[:rows, :cols]
            _weights_kernel[lambda meta: (triton.cdiv(rows, meta["BLOCK_M"]), triton.cdiv(cols, meta["BLOCK_N"]))](
                x, y, w, row0, col0, row0 + rows, col0 + cols, dim, x.stride(0), x.stride(1), y.stride(0),
                y.stride(1), w.stride(0), gamma_hi, gamma_lo, SELF=self_sum, BLOCK_K=_block_k(dim),
                PRECISION=dot_precision, COMPUTE=compute)
            w_sum[row0:row0 + rows] += w.sum(1)
            wy[row0:row0 + rows].addmm_(w, ys[col0:col0 + cols])
    return wy.mul_(-scale).addcmul_(w_sum[:, None], xs, value=scale).to(x.dtype)  # in place: stays contiguous


def _grad(x, y, gamma, precision, self_sum):
    x, y, compute, dot_precision = _prepare(x, y, precision)
    scale = 4.0 if self_sum else 2.0
    path = _fused_grad if x.shape[1] <= MAX_FUSED_DIM else _chunked_grad
    with _on_device(x):
        return path(x, y, gamma, dot_precision, compute, scale, self_sum)


# ---------------------------------------------------------------------------------------- registration

@torch.library.custom_op("lcw_fast_triton::kernel_sum", mutates_args=())
def kernel_sum(x: torch.Tensor, y: torch.Tensor, gamma: float, precision: str = "default") -> torch.Tensor:
    """sum_ij k(|x_i - y_j|^2); x: (n, D), y: (m, D) -> 0-dim float64."""
    return _sum(x, y, gamma, precision, self_sum=False)


@torch.library.custom_op("lcw_fast_triton::kernel_sum_self", mutates_args=())
def kernel_sum_self(x: torch.Tensor, gamma: float, precision: str = "default") -> torch.Tensor:
    """sum_ij k(|x_i - x_j|^2) over upper-triangle tiles; x: (n, D) -> 0-dim float64."""
    return _sum(x, x, gamma, precision, self_sum=True)


@torch.library.custom_op("lcw_fast_triton::kernel_sum_grad", mutates_args=())
def kernel_sum_grad(x: torch.Tensor, y: torch.Tensor, gamma: float, precision: str = "default") -> torch.Tensor:
    """d/dx sum_ij k(|x_i - y_j|^2) -> (n, D) in x's dtype."""
    return _grad(x, y, gamma, precision, self_sum=False).to(x.dtype)


@torch.library.custom_op("lcw_fast_triton::kernel_sum_self_grad", mutates_args=())
def kernel_sum_self_grad(x: torch.Tensor, gamma: float, precision: str = "default") -> torch.Tensor:
    """d/dx sum_ij k(|x_i - x_j|^2), x on both sides -> (n, D) in x's dtype."""
    return _grad(x, x, gamma, precision, self_sum=True)


ops.register_fakes("lcw_fast_triton")
ops.register_autograd("lcw_fast_triton")
