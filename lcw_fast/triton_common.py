"""What the Triton kernels of lcw_fast share: environment, launch helpers and @triton.jit building blocks.

With c = 2D - 3, k(d) = (gamma + d/c)^(-1/2) and w = k'(d) = -k(d)^3 / (2c); d_ij = |x_i|^2 + |y_j|^2 - 2 x_i.y_j.

Environment (read at every launch, so tests can set them):
  LCW_FAST_POISON=1         fill outputs and scratch with NaN before each launch: a value a kernel fails to
                            write shows up as NaN.
  LCW_FAST_SCRATCH_BYTES    bound on the scratch a launch allocates beyond its O((n + m) D) outputs
                            (default 256 MiB).
  LCW_FAST_INTERPRET_CONFIGS=all   under TRITON_INTERPRET=1, keep every autotune config of the tables
                            (read at import; default: one 64 x 64 config per kernel, fast). For tests of
                            the autotuning path itself, e.g. the GPU kit's config pinning.
Precision: float32 in "default" mode multiplies by 3xTF32 (float32-accurate): the samples are split once
per call into x = hi + lo (hi rounded to TF32, lo exact), so the kernels load both halves straight into
the tensor-core operands, and the weights are split in registers; "fast" mode is one TF32 product;
float64 runs IEEE float64; the interpreter computes IEEE float32. bf16/fp16 inputs stay in their dtype
into every product (fp32 accumulation): the Gram multiplies them as they are, a product with the
float32 weights w splits w into a hi and a lo half in the inputs' dtype (the inputs are exact).
Samples reach the kernels contiguous and padded with zero columns to a multiple of 16 (Launch.operands).
"""
import contextlib
import math
import os

import torch
import triton
import triton.language as tl

from .backends import triton_interpreted
from .validation import check_gamma, check_pair, check_precision, check_sample

INTERPRETED = triton_interpreted()
DEFAULT_SCRATCH_BYTES = 256 * 2**20


def poison() -> bool:
    return os.environ.get("LCW_FAST_POISON", "0") == "1"


def scratch_bytes() -> int:
    value = os.environ.get("LCW_FAST_SCRATCH_BYTES")
    if value is None:
        return DEFAULT_SCRATCH_BYTES
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"LCW_FAST_SCRATCH_BYTES must be a positive integer, got {value!r}")
    return int(value)


def new_buffer(shape, dtype, device):
    """An output or scratch buffer: uninitialised, or NaN-filled when LCW_FAST_POISON=1."""
    if poison():
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def configs(shapes, interpreted=None):
    """triton.Config for each (BLOCK_M, BLOCK_N, num_warps, num_stages, extra kwargs); under the interpreter
    only the first shape with 64 x 64 tiles (the interpreter runs one config, fast), unless
    LCW_FAST_INTERPRET_CONFIGS=all."""
    if interpreted is None:
        interpreted = INTERPRETED and os.environ.get("LCW_FAST_INTERPRET_CONFIGS", "") != "all"
    if interpreted:
        shapes = (((64, 64, 1, 1) + tuple(shapes[0][4:])),)
    out = []
    for bm, bn, warps, stages, *extra in shapes:
        kwargs = {"BLOCK_M": bm, "BLOCK_N": bn, "STAGES": stages, **(extra[0] if extra else {})}
        out.append(triton.Config(kwargs, num_warps=warps, num_stages=stages))
    return out


def size_bucket(n: int, m: int) -> int:
    """Autotune key term: log2 of the number of pairs (configs are retuned per factor 2 of n * m)."""
    return int(math.log2(n * m))


class Launch:
    """The checked, promoted inputs of one op call and what every kernel launch on them needs."""

    def __init__(self, x, y, gamma, precision, self_sum):
        check_precision(precision)
        self.gamma = check_gamma(gamma)
        if self_sum:
            check_sample("x", x)
        else:
            check_pair(x, y)
        if x.device.type != "cuda" and not INTERPRETED:
            raise ValueError(f"the Triton backend needs CUDA tensors (or TRITON_INTERPRET=1), got x on {x.device}")
        dtype = torch.promote_types(x.dtype, y.dtype)
        self.out_dtypes = (x.dtype, y.dtype)
        self.x, self.y = x.to(dtype), y.to(dtype)
        self.self_sum = self_sum
        self.compute = tl.float64 if dtype == torch.float64 else tl.float32
        self.acc_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        # float32 in default mode: 3xTF32 on operands split once per call (operands()); the split
        # also runs under the interpreter (where every tl.dot is IEEE float32), so the tests cover it.
        self.split = dtype == torch.float32 and precision == "default"
        self.dot_precision = "ieee" if INTERPRETED or dtype == torch.float64 else "tf32"
        hi = float(torch.tensor(self.gamma, dtype=torch.float32))
        self.gamma_split = (hi, self.gamma - hi)  # Python floats reach a kernel as float32
        self.n, self.m, self.dim = x.shape[0], y.shape[0], x.shape[1]
        # Samples are padded with zero columns to a multiple of 16: 16-byte aligned rows for every load.
        self.pdim = triton.cdiv(self.dim, 16) * 16
        self.bucket = size_bucket(self.n, self.m)

    def padded(self, t):
        """t with zero columns up to pdim, contiguous."""
        return torch.nn.functional.pad(t, (0, self.pdim - self.dim)) if self.pdim > self.dim else t.contiguous()

    def crop(self, g):
        """A (rows, pdim) gradient as (rows, dim), contiguous."""
        return g[:, : self.dim].contiguous() if self.pdim > self.dim else g

    def operands(self, t):
        """(hi, lo, squared norms) of a sample padded to pdim columns: hi + lo = t exactly with hi rounded to
        TF32 when self.split, else (t, t, norms). Norms in the accumulation dtype."""
        t = self.padded(t)
        norms = t.to(self.acc_dtype).square().sum(1)
        if not self.split:
            return t, t, norms
        hi = ((t.view(torch.int32) + 0x1000) & -8192).view(torch.float32)
        return hi, t - hi, norms

    def device_guard(self):
        """Triton launches on the current CUDA device, not the tensor's: make x's device current."""
        return torch.cuda.device(self.x.device) if self.x.is_cuda else contextlib.nullcontext()

    def target_programs(self) -> int:
        return target_programs(self.x.device)


def target_programs(device) -> int:
    """Programs wanted in flight: a few per SM on the GPU, one per band when interpreted."""
    if INTERPRETED or device.type != "cuda":
        return 1
    return 4 * torch.cuda.get_device_properties(device).multi_processor_count


def finish(value, grads, out_dtypes):
    """Non-finite contract: value * 0 is NaN exactly when the value is NaN (any NaN/Inf input), and adding
    it makes every gradient entry NaN then, on the device without a host sync."""
    nan_or_zero = value * 0.0
    return tuple(g.add_(nan_or_zero.to(g.dtype)).to(dtype) for g, dtype in zip(grads, out_dtypes))


# ------------------------------------------------------------------------------------------- jit helpers

@triton.jit
def gamma_inv_c(gamma_hi, gamma_lo, D, COMPUTE: tl.constexpr):
    """gamma (sent as two float32 halves) and 1 / c = 1 / (2D - 3) in COMPUTE precision; D the true one."""
    gamma = tl.cast(gamma_hi, COMPUTE) + tl.cast(gamma_lo, COMPUTE)
    inv_c = 1.0 / tl.cast(2 * D - 3, COMPUTE)
    return gamma, inv_c


@triton.jit
def cw_k(d, gamma, inv_c):
    """k(d) = (gamma + d / c)^(-1/2)."""
    v = gamma + d * inv_c
    if v.dtype == tl.float64:
        # tl.rsqrt lowers float64 to PTX rsqrt.approx.f64, an approximation; sqrt.rn and div.rn are exact.
        return 1.0 / tl.sqrt(v)
    else:
        return tl.rsqrt(v)


@triton.jit
def clamp_dists(xn, yn, gram, row0, col0, rmask, cmask, SELF: tl.constexpr):
    """Squared distances from norms and Gram of rows row0 + i, columns col0 + j; SELF: same points.

    Padded rows and columns (rmask / cmask false) get d = +Inf, so k = 0 and w = 0 there without a
    [rows, cols] mask."""
    # A point with an Inf coordinate has |x|^2 = Inf and may give d = +Inf (k = 0) for some partners;
    # x + 0 x turns that norm into NaN so every pair with a non-finite point is NaN.
    zero_x = 0.0 * xn  # 0 for finite points, NaN for NaN/Inf ones, which must propagate
    xn = tl.where(rmask, xn + zero_x, float("inf"))
    yn = tl.where(cmask, yn + 0.0 * yn, float("inf"))
    d = xn[:, None] + yn[None, :] - 2.0 * gram
    d = tl.where(d < 0.0, 0.0, d)  # not tl.maximum: that would turn NaN into 0
    if SELF:
        # The diagonal i - j == col0 - row0, compared in int32 (the offset clamped outside the tile).
        offset = tl.minimum(tl.maximum(col0 - row0, -gram.shape[1]), gram.shape[0]).to(tl.int32)
        local = tl.arange(0, gram.shape[0])[:, None] - tl.arange(0, gram.shape[1])[None, :]
        d = tl.where(local == offset, tl.where(rmask, zero_x, float("inf"))[:, None], d)
    return d


@triton.jit
def round_tf32(v):
    """v rounded to TF32 (10 mantissa bits), so v - round_tf32(v) is exact and TF32-representable enough."""
    bits = v.to(tl.int32, bitcast=True)
    return ((bits + 0x1000) & -8192).to(tl.float32, bitcast=True)


@triton.jit
def gram_tile(a_hi, a_lo, b_hi, b_lo, acc, SPLIT: tl.constexpr, PRECISION: tl.constexpr):
    """acc + a @ b^T by tl.dot; SPLIT: 3xTF32 on the pre-split operands a = a_hi + a_lo, b = b_hi + b_lo
    (small products first), which come straight from memory into the tensor-core operands."""
    if SPLIT:
        acc = tl.dot(a_lo, tl.trans(b_hi), acc, input_precision=PRECISION, out_dtype=acc.dtype)
        acc = tl.dot(a_hi, tl.trans(b_lo), acc, input_precision=PRECISION, out_dtype=acc.dtype)
    return tl.dot(a_hi, tl.trans(b_hi), acc, input_precision=PRECISION, out_dtype=acc.dtype)


@triton.jit
def split_weights(w, b, SPLIT: tl.constexpr):
    """(hi, lo) halves of float32/float64 weights w for products with samples of b's dtype: bf16/fp16 b:
    two halves in b's dtype; SPLIT: hi rounded to TF32 and the exact rest; otherwise (w, unused)."""
    if b.dtype.primitive_bitwidth == 16:
        hi = w.to(b.dtype)
        return hi, (w - hi.to(w.dtype)).to(b.dtype)
    elif SPLIT:
        hi = round_tf32(w)
        return hi, w - hi
    else:
        return w.to(b.dtype), w.to(b.dtype)


@triton.jit
def dot_weights(w_hi, w_lo, b_hi, b_lo, acc, SPLIT: tl.constexpr, PRECISION: tl.constexpr):
    """acc + w @ b on tensor cores at b's precision, w = w_hi + w_lo from split_weights (registers) and
    b = b_hi + b_lo (memory; b_lo unused unless SPLIT): 3xTF32 when SPLIT, two products of 16-bit halves
    with b exact for 16-bit b, otherwise one tl.dot at PRECISION."""
    if b_hi.dtype.primitive_bitwidth == 16:
        acc = tl.dot(w_lo, b_hi, acc, out_dtype=acc.dtype)
    elif SPLIT:
        acc = tl.dot(w_lo, b_hi, acc, input_precision=PRECISION, out_dtype=acc.dtype)
        acc = tl.dot(w_hi, b_lo, acc, input_precision=PRECISION, out_dtype=acc.dtype)
    return tl.dot(w_hi, b_hi, acc, input_precision=PRECISION, out_dtype=acc.dtype)
