"""What the Triton kernels of lcw_fast share: environment, launch helpers and @triton.jit building blocks.

With c = 2D - 3, k(d) = (gamma + d/c)^(-1/2) and w = k'(d) = -k(d)^3 / (2c); d_ij = |x_i|^2 + |y_j|^2 - 2 x_i.y_j.

Environment (read at every launch, so tests can set them):
  LCW_FAST_POISON=1         fill outputs and scratch with NaN before each launch: a value a kernel fails to
                            write shows up as NaN.
  LCW_FAST_SCRATCH_BYTES    bound on the scratch a launch allocates beyond its O((n + m) D) outputs
                            (default 256 MiB).
Precision: tl.dot runs "tf32x3" (3xTF32, float32-accurate) in "default" mode, plain "tf32" in "fast" mode;
float64 runs IEEE float64; the interpreter computes IEEE float32. bf16/fp16 inputs stay in their dtype
into every product (fp32 accumulation): the Gram multiplies them as they are, a product with the
float32 weights w splits w into a hi and a lo half in the inputs' dtype (the inputs are exact).
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
_DOT_PRECISION = {"default": "tf32x3", "fast": "tf32"}


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
    only the first shape with 64 x 64 tiles (the interpreter runs one config, fast)."""
    if INTERPRETED if interpreted is None else interpreted:
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
        self.dot_precision = "ieee" if INTERPRETED or dtype == torch.float64 else _DOT_PRECISION[precision]
        hi = float(torch.tensor(self.gamma, dtype=torch.float32))
        self.gamma_split = (hi, self.gamma - hi)  # Python floats reach a kernel as float32
        self.n, self.m, self.dim = x.shape[0], y.shape[0], x.shape[1]
        self.bucket = size_bucket(self.n, self.m)

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
def clamp_dists(xn, yn, gram, row0, col0, SELF: tl.constexpr):
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


@triton.jit
def dot_weights(w, b, acc, PRECISION: tl.constexpr):
    """acc + w @ b for float32/float64 weights w and samples b, on tensor cores at b's precision: tl.dot at
    PRECISION for 32/64-bit b; for 16-bit b, w = hi + lo split into two halves of b's dtype (b is exact)."""
    if b.dtype.primitive_bitwidth == 16:
        hi = w.to(b.dtype)
        lo = (w - hi.to(w.dtype)).to(b.dtype)
        acc = tl.dot(hi, b, acc, out_dtype=acc.dtype)
        return tl.dot(lo, b, acc, out_dtype=acc.dtype)
    else:
        return tl.dot(w.to(b.dtype), b, acc, input_precision=PRECISION, out_dtype=acc.dtype)
