"""Work per call (FLOPs, bytes), the work each schedule executes, and the device ceilings it is compared with.

Minimum FLOPs (`op_cost`): what any implementation must do, so that a fraction of the roofline can
only be <= 1 (up to timing noise). FLOPs of one kernel sum over `pairs` pairs of D-dimensional
points (a multiply-add counts 2, rsqrt 1):
  forward  per pair: 2D (Gram entry x.y) + 7 (d = |x|^2 + |y|^2 - 2 x.y: 3; t = gamma + d/c: 2;
                     rsqrt: 1; accumulate: 1)                                     = 2D + 7
  backward per pair: 3 (w = -k^3/(2c) from the forward's k) + per gradient side 2D + 1 (the W.Y
                     product and the row sum of w).
A self-sum needs each unordered pair once: n(n+1)/2 pairs, and its backward has two gradient
sides (both points of a pair); a cross sum has n*m pairs and one side per input that needs a grad.
Per public call (workload "normality" = cw_normality(z), "distance" = cw_distance(x, y) with the
gradient w.r.t. y only, x being data):
  normality fwd = self(n) fwd + 2nD + 4n (the term to N(0, I))    bwd = self(n) bwd + 2nD
  distance  fwd = self(n) fwd + self(m) fwd + cross(n, m) fwd      bwd = self(m) bwd + cross(n, m) bwd (1 side)
Bytes: the compulsory traffic, each input read once per pass and each gradient written once,
  fwd = (inputs' elements) * itemsize,  bwd = (inputs' elements + gradient elements) * itemsize.

Executed work (`work`, a `Work` per pass): what a schedule really runs, in three resources:
  tensor_flops  matmul FLOPs on the matmul units, counting every term of a split product: 3xTF32
                ("default" on a GPU) is 3 TF32 products per Gram entry and per W.Y entry; bf16 is one
                Gram product and 2 for W.Y (W split hi/lo, Y exact); "fast" one each; the CPU (no
                tensor cores) and the reference's SGEMM one each.
  mufu          rsqrt operations (one per visited pair and Gram visit: k, then w = k' from k by FMAs).
  bytes         HBM bytes: the compulsory traffic, plus for the blocked large-D GPU paths (D > 256)
                the round trips of their pairwise scratch (Gram entry, weight parts) per visited pair.
  The benchmarks time "fwd" with inputs that require grad, so a one-pass backend does all of its
  work there and its "bwd" only scales the saved gradients.
  Schedules (`SCHEDULES`): "one_pass" (value and gradients from one visit of each pair, self-sums on
  the upper triangle both in the value and the gradient: issue 11), "recompute" (the backward
  recomputes the Gram and a self-sum gradient visits all n^2 pairs: the GPU backends before issue
  11), "reference" (materialising cdist: no symmetry anywhere, the backward recomputes).
  The minimum work (`minimum_work`) is "one_pass" at the same precision and without scratch traffic:
  the floor of any implementation at that precision.

A row's floor = max(tensor_flops / matmul ceiling, mufu / MUFU rate, bytes / copy bandwidth) with the
ceiling of the unit the products run on (tf32 for "default" and "fast" on GPU backends: 3xTF32 work
is compared with the TF32 ceiling, 3 products per entry; bf16 for "bf16"; fp32 SGEMM for the
reference and the CPU). roofline_ms / roofline_fraction: the floor of the minimum work against the
measured time (the issue's "fraction of the 3xTF32 floor"); executed_ms / executed_fraction: the floor
of the executed work (how close the kernels run to the ceilings for what they do). Both are <= 1 when
the ceilings are true maxima. The matmul and copy ceilings are measured before and after the sweep
and the better of the two is used (`best_ceilings`), so a moment of contention on a shared machine
does not lower the limit; the MUFU rate is nominal (SMs x 16 rsqrt per clock x clock; None on CPUs).
"""
from typing import Dict, NamedTuple, Optional

import torch

from .timing import measure

FWD_EPILOGUE = 7
BWD_EPILOGUE = 3
PASSES = ("fwd", "bwd", "fwd+bwd")
CEILING_OF_MODE = {"default": "tf32", "fast": "tf32", "bf16": "bf16"}  # where the backends' products run
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


class Work(NamedTuple):
    tensor_flops: float
    mufu: float
    bytes: float


class Schedule(NamedTuple):
    grad_visits: int         # Gram visits of a pair when gradients are wanted (1: one pass; 2: backward recomputes)
    self_grad_triangle: bool  # a self-sum gradient visits each unordered pair once (both sides)
    self_fwd_triangle: bool   # a self-sum value visits each unordered pair once


SCHEDULES = {"one_pass": Schedule(1, True, True), "recompute": Schedule(2, False, True),
             "reference": Schedule(2, False, False)}
# Schedule of each provider backend once issue 11 is in (CPU, Triton and CUDA all one-pass).
SCHEDULE_OF_BACKEND = {"cpu": "one_pass", "cuda": "one_pass", "triton": "one_pass", "reference": "reference",
                       "keops": "reference"}
# (Gram terms, W.Y terms) of each mode on a GPU backend's tensor cores; everything else runs one term.
GPU_TERMS = {"default": (3, 3), "fast": (1, 1), "bf16": (1, 2)}
GPU_BACKENDS = ("cuda", "triton")
BLOCKED_MIN_DIM = 257  # D from which the GPU backends go through bounded pairwise scratch blocks


def terms_for(backend: str, mode: str, device_type: str):
    """(Gram terms, W.Y terms): tensor-core products per exact product entry."""
    if device_type == "cuda" and backend in GPU_BACKENDS:
        return GPU_TERMS[mode]
    return 1, 1


def scratch_bytes_per_pair(mode: str, grad_sides: int) -> int:
    """HBM bytes per visited pair of the blocked large-D paths: the Gram entry written by the GEMM
    and read + rewritten by the epilogue (4 + 8), with gradients its weight parts written and read
    by each W.Y term of each side."""
    if not grad_sides:
        return 12
    weight_part = {"default": (4, 4 * 3), "fast": (0, 4), "bf16": (4, 2 * 2)}[mode]  # (extra write, reads per side)
    return 12 + weight_part[0] + grad_sides * weight_part[1]


def _sum_work(pairs: int, dim: int, grad_sides: int, terms, scratch: int) -> Work:
    """One visit of `pairs` pairs: the Gram, k (and w), and W.Y on grad_sides sides."""
    gram, wy = terms
    return Work(pairs * 2 * dim * (gram + grad_sides * wy), pairs, pairs * scratch)


def _add(*works: Work) -> Work:
    return Work(*(sum(w[i] for w in works) for i in range(3)))


def _kernel_sum_work(n: int, m: int, dim: int, grad_sides: int, self_sum: bool, schedule: Schedule, terms,
                     mode: str, blocked: bool) -> Dict[str, Work]:
    """Work of one kernel sum, per pass; grad_sides = 0: no gradient."""
    def scratch(sides):
        return scratch_bytes_per_pair(mode, sides) if blocked else 0

    full = n * m
    fwd_pairs = self_pairs(n) if self_sum and schedule.self_fwd_triangle else full
    fwd = _sum_work(fwd_pairs, dim, 0, terms, scratch(0))
    if not grad_sides:
        return {"fwd": fwd, "bwd": Work(0, 0, 0), "fwd+bwd": fwd}
    if not self_sum:
        grad_pairs, sides = full, grad_sides
    elif schedule.self_grad_triangle:
        grad_pairs, sides = self_pairs(n), grad_sides
    else:  # every ordered pair, each visit updating its own row only
        grad_pairs, sides = full, 1
    if schedule.grad_visits == 1:  # the forward (inputs requiring grad) does it all; backward scales
        both = _sum_work(grad_pairs, dim, sides, terms, scratch(sides))
        return {"fwd": both, "bwd": Work(0, 0, 0), "fwd+bwd": both}
    bwd = _sum_work(grad_pairs, dim, sides, terms, scratch(sides))
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": _add(fwd, bwd)}


def work(workload: str, n: int, m: int, dim: int, itemsize: int, *, backend: str, mode: str,
         device_type: str, schedule: Optional[str] = None) -> Dict[str, Work]:
    """Executed work of each pass of one call of the workload by `backend` in `mode` (schedule:
    the backend's own by default)."""
    sched = SCHEDULES[schedule or SCHEDULE_OF_BACKEND[backend]]
    terms = terms_for(backend, mode, device_type)
    blocked = device_type == "cuda" and backend in GPU_BACKENDS and dim >= BLOCKED_MIN_DIM
    compulsory = op_cost(workload, n, m, dim, itemsize)
    if workload == "normality":
        parts = [_kernel_sum_work(n, n, dim, 2, True, sched, terms, mode, blocked)]
    elif workload == "distance":
        parts = [_kernel_sum_work(n, n, dim, 0, True, sched, terms, mode, blocked),
                 _kernel_sum_work(m, m, dim, 2, True, sched, terms, mode, blocked),
                 _kernel_sum_work(n, m, dim, 1, False, sched, terms, mode, blocked)]
    else:
        raise ValueError(f"workload must be 'normality' or 'distance', got {workload!r}")
    out = {}
    for p in PASSES:
        w = _add(*(part[p] for part in parts))
        out[p] = Work(w.tensor_flops, w.mufu, w.bytes + compulsory[p].bytes)
    return out


def minimum_work(workload: str, n: int, m: int, dim: int, itemsize: int, *, backend: str, mode: str,
                 device_type: str) -> Dict[str, Work]:
    """The one-pass work at the same precision without scratch traffic: the floor at that precision."""
    executed = work(workload, n, m, dim, itemsize, backend=backend, mode=mode, device_type=device_type,
                    schedule="one_pass")
    blocked = device_type == "cuda" and backend in GPU_BACKENDS and dim >= BLOCKED_MIN_DIM
    if not blocked:
        return executed
    compulsory = op_cost(workload, n, m, dim, itemsize)
    return {p: Work(w.tensor_flops, w.mufu, compulsory[p].bytes) for p, w in executed.items()}


def floor_ms(w: Work, tflops: float, mufu_per_s: Optional[float], copy_gbps: float) -> float:
    """Lower bound on the time of `w`: the slowest of matmul units, MUFU (when its rate is known), HBM."""
    mufu_s = w.mufu / mufu_per_s if mufu_per_s else 0.0
    return max(w.tensor_flops / (tflops * 1e12), mufu_s, w.bytes / (copy_gbps * 1e9)) * 1e3


def roofline_ms(cost: Cost, tflops: float, copy_gbps: float) -> float:
    """Lower bound on the time of a call: compute-bound or bandwidth-bound, whichever is slower."""
    return max(cost.flops / (tflops * 1e12), cost.bytes / (copy_gbps * 1e9)) * 1e3


def best_ceilings(*measured: dict) -> dict:
    """Entry-wise best of several measure_ceilings results (None stays None)."""
    return {k: (max(m[k] for m in measured) if measured[0][k] is not None else None) for k in measured[0]}


def add_roofline(row: dict, ceilings: dict) -> dict:
    """Adds the executed and minimum work of a timed row (workload, backend, mode, n, m, D, dtype,
    device_type), the ceiling used, their floors and fractions, and the achieved tensor TFLOP/s."""
    device_type = row.get("device_type", "cuda" if ceilings.get("tf32_tflops") else "cpu")
    ceiling = ceiling_for(row["mode"], ceilings, row["backend"], device_type)
    tflops = ceilings[f"{ceiling}_tflops"]
    itemsize = 2 if row["dtype"] == "bfloat16" else 4
    args = (row["workload"], row["n"], row["m"], row["D"], itemsize)
    kw = dict(backend=row["backend"], mode=row["mode"], device_type=device_type)
    done = work(*args, **kw)[row["pass"]]
    least = minimum_work(*args, **kw)[row["pass"]]
    mufu = ceilings.get("mufu_per_s")
    executed = floor_ms(done, tflops, mufu, ceilings["copy_gbps"])
    roof = floor_ms(least, tflops, mufu, ceilings["copy_gbps"])
    row.update(exec_tensor_flops=done.tensor_flops, exec_mufu=done.mufu, exec_bytes=done.bytes,
               min_tensor_flops=least.tensor_flops, min_mufu=least.mufu, min_bytes=least.bytes,
               terms="x".join(map(str, terms_for(row["backend"], row["mode"], device_type))),
               tflops=done.tensor_flops / (row["median_ms"] * 1e-3) / 1e12, ceiling=ceiling, ceiling_tflops=tflops,
               executed_ms=executed, executed_fraction=executed / row["median_ms"],
               roofline_ms=roof, roofline_fraction=roof / row["median_ms"])
    return row


def ceiling_for(mode: str, ceilings: dict, backend: str = "cuda", device_type: str = "cuda") -> str:
    """Which measured matmul ceiling a row's products are compared with: the unit they run on
    (tf32 for 3xTF32 and TF32 on GPU backends, bf16, fp32 SGEMM for the reference and the CPU;
    fp32 where the named ceiling was not measured)."""
    if backend in GPU_BACKENDS or backend == "cpu":
        name = CEILING_OF_MODE[mode]
    else:
        name = "fp32"
    if device_type != "cuda" and name == "tf32":
        name = "fp32"
    return name if ceilings.get(f"{name}_tflops") else "fp32"


def _mufu_per_s(device: torch.device) -> Optional[float]:
    """Nominal rsqrt rate: 16 per SM per clock (sm_80 / sm_90) x SMs x clock; None off CUDA."""
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    return 16.0 * props.multi_processor_count * props.clock_rate * 1e3


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
    the copy GB/s of copy_bytes, on `device` now (sizes default per device type), and the nominal
    MUFU rate.

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
        "mufu_per_s": _mufu_per_s(device),
    }
