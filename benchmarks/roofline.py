"""Work per call (FLOPs, bytes) and the device ceilings it is compared with, measured in the same run.

The minimum work, so that a fraction of the roofline can only be <= 1 (up to timing noise).
FLOPs of one kernel sum over `pairs` pairs of D-dimensional points (a multiply-add counts 2, rsqrt 1):
  forward  per pair: 2D (Gram entry x.y) + 7 (d = |x|^2 + |y|^2 - 2 x.y: 3; t = gamma + d/c: 2;
                     rsqrt: 1; accumulate: 1)                                     = 2D + 7
  backward per pair: 3 (w = -k^3/(2c) from the forward's k) + per gradient side 2D + 1 (the W.Y
                     product and the row sum of w). An implementation that recomputes the Gram in
                     its backward does 2D + 7 more per pair, and shows it as a lower fraction.
A self-sum needs each unordered pair once: n(n+1)/2 pairs, and its backward has two gradient
sides (both points of a pair); a cross sum has n*m pairs and one side per input that needs a grad.
The materialising reference does more (no symmetry in cdist, n x m intermediates in memory).

Per public call (workload "normality" = cw_normality(z), "distance" = cw_distance(x, y) with the
gradient w.r.t. y only, x being data):
  normality fwd = self(n) fwd + 2nD + 4n (the term to N(0, I))    bwd = self(n) bwd + 2nD
  distance  fwd = self(n) fwd + self(m) fwd + cross(n, m) fwd      bwd = self(m) bwd + cross(n, m) bwd (1 side)
Bytes: the compulsory traffic, each input read once per pass and each gradient written once,
  fwd = (inputs' elements) * itemsize,  bwd = (inputs' elements + gradient elements) * itemsize.

Roofline time = max(FLOPs / matmul ceiling, bytes / copy bandwidth), the ceiling of the row's
precision (fp32 for "default" and the reference, tf32 for "fast", bf16 for "bf16"); a row's
fraction of the roofline is roofline time / measured median time. The ceilings are measured before
and after the sweep and the better of the two is used (`best_ceilings`), so a moment of contention
on a shared machine does not lower the limit.
"""
from typing import Dict, NamedTuple, Optional

import torch

from .timing import measure

FWD_EPILOGUE = 7
BWD_EPILOGUE = 3
PASSES = ("fwd", "bwd", "fwd+bwd")
CEILING_OF_MODE = {"default": "fp32", "fast": "tf32", "bf16": "bf16"}
MATMUL_SIZE = {"cuda": 8192, "cpu": 1024}
COPY_BYTES = {"cuda": 1 << 30, "cpu": 1 << 28}


class Cost(NamedTuple):
    flops: float
    bytes: float


def self_pairs(n: int) -> int:
    return n * (n + 1) // 2


def sum_flops(pairs: int, dim: int, grad_sides: int):
    """(forward, backward) FLOPs of one kernel sum; grad_sides = 0 means no backward."""
    fwd = pairs * (2 * dim + FWD_EPILOGUE)
    bwd = pairs * (BWD_EPILOGUE + grad_sides * (2 * dim + 1)) if grad_sides else 0
    return fwd, bwd


def op_cost(workload: str, n: int, m: int, dim: int, itemsize: int) -> Dict[str, Cost]:
    """Cost of each pass ("fwd", "bwd", "fwd+bwd") of one call of the workload."""
    if workload == "normality":
        s_fwd, s_bwd = sum_flops(self_pairs(n), dim, 2)
        fwd = Cost(s_fwd + 2 * n * dim + 4 * n, n * dim * itemsize)
        bwd = Cost(s_bwd + 2 * n * dim, 2 * n * dim * itemsize)
    elif workload == "distance":
        xx, _ = sum_flops(self_pairs(n), dim, 0)
        yy, yy_bwd = sum_flops(self_pairs(m), dim, 2)
        xy, xy_bwd = sum_flops(n * m, dim, 1)
        fwd = Cost(xx + yy + xy, (n + m) * dim * itemsize)
        bwd = Cost(yy_bwd + xy_bwd, (n + 2 * m) * dim * itemsize)
    else:
        raise ValueError(f"workload must be 'normality' or 'distance', got {workload!r}")
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": Cost(fwd.flops + bwd.flops, fwd.bytes + bwd.bytes)}


def roofline_ms(cost: Cost, tflops: float, copy_gbps: float) -> float:
    """Lower bound on the time of a call: compute-bound or bandwidth-bound, whichever is slower."""
    return max(cost.flops / (tflops * 1e12), cost.bytes / (copy_gbps * 1e9)) * 1e3


def best_ceilings(*measured: dict) -> dict:
    """Entry-wise best of several measure_ceilings results (None stays None)."""
    return {k: (max(m[k] for m in measured) if measured[0][k] is not None else None) for k in measured[0]}


def add_roofline(row: dict, ceilings: dict) -> dict:
    """Adds the achieved TFLOP/s, the ceiling used, the roofline time and fraction to a timed row."""
    ceiling = ceiling_for(row["mode"], ceilings)
    tflops = ceilings[f"{ceiling}_tflops"]
    roof = roofline_ms(Cost(row["flops"], row["bytes"]), tflops, ceilings["copy_gbps"])
    row.update(tflops=row["flops"] / (row["median_ms"] * 1e-3) / 1e12, ceiling=ceiling, ceiling_tflops=tflops,
               roofline_ms=roof, roofline_fraction=roof / row["median_ms"])
    return row


def ceiling_for(mode: str, ceilings: dict) -> str:
    """Which measured matmul ceiling a row of this mode is compared with (fp32 where tf32 is n/a)."""
    name = CEILING_OF_MODE[mode]
    return name if ceilings.get(f"{name}_tflops") else "fp32"


def _matmul_tflops(device: torch.device, dtype: torch.dtype, size: int, repeats: int,
                   tf32: bool = False) -> float:
    """torch.matmul TFLOP/s of two random (size, size) matrices; tf32 switches TF32 on for float32."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        t = measure(lambda: torch.matmul(a, b, out=out), device, repeats=repeats, warmup=2)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return 2 * size**3 / (t.stats["min_ms"] * 1e-3) / 1e12


def _copy_gbps(device: torch.device, nbytes: int, repeats: int) -> float:
    """Device copy bandwidth, counting the bytes read and the bytes written."""
    src = torch.empty(nbytes // 4, device=device, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    t = measure(lambda: dst.copy_(src), device, repeats=repeats, warmup=2)
    return 2 * nbytes / (t.stats["min_ms"] * 1e-3) / 1e9


def measure_ceilings(device: torch.device, repeats: int = 10, size: Optional[int] = None,
                     copy_bytes: Optional[int] = None) -> dict:
    """torch.matmul TFLOP/s in fp32 (TF32 off), tf32 (GPU only) and bf16 of (size, size) matrices,
    and the copy GB/s of copy_bytes, on `device` now (sizes default per device type).

    Each is the best of the repeats: a ceiling is the most the device was seen to do.
    """
    size = size or MATMUL_SIZE[device.type]
    copy_bytes = copy_bytes or COPY_BYTES[device.type]
    tf32 = device.type == "cuda"  # TF32 is a tensor-core format: CPUs have none
    return {
        "matmul_size": size,
        "fp32_tflops": _matmul_tflops(device, torch.float32, size, repeats),
        "tf32_tflops": _matmul_tflops(device, torch.float32, size, repeats, tf32=True) if tf32 else None,
        "bf16_tflops": _matmul_tflops(device, torch.bfloat16, size, repeats),
        "copy_bytes": copy_bytes,
        "copy_gbps": _copy_gbps(device, copy_bytes, repeats),
    }
