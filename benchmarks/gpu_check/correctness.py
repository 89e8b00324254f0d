"""Step 3: every op of both GPU backends against the bounded-memory float64 reference.

For each case (n, m, D, dtype, precision, layout), in order of value, the reference quantities are
computed once from the samples as rounded to the case's dtype, then every op each backend has
(op_table.available) runs twice with LCW_FAST_POISON=1 (outputs and scratch NaN-filled before
launch, set by gpu_check.sh). One row per (backend, case, op), appended as it finishes:
  value_rel_err     |value - S| / S (the sums' terms are all positive: no cancellation)
  grad_rel_l2       max over the op's gradients of |g - g_ref|_2 / |g_ref|_2, where g_ref = 0
                    (a self-sum at n = 1) against |dS/dx|_2 instead
  bit_equal         the second call returned bit-identical outputs
  value_rtol, grad_rel_l2_tol   the case's tolerances (TOLERANCE); status "failed" when an error
                    exceeds them, an output is not finite, has the wrong dtype/shape/layout, the
                    two calls differ, or the op raised.
Cases after the step's budget are recorded as skipped. Then the public API's accuracy at the
headline sizes (accuracy.py).
"""
import time
from typing import Dict, NamedTuple, Tuple

import torch

from ..timing import describe_error
from . import accuracy, gpu_backends, op_table, rows

GAMMA = 0.37
STEP = "correctness"
# (value relative error, gradient relative L2 error) by (input dtype, precision). float32 "default"
# is the core float32 bound; "fast" is plain TF32 (10 mantissa bits per Gram operand); half-precision
# inputs accumulate in float32 but return their gradient in their own dtype (2^-11, 2^-8 rounding).
TOLERANCE = {
    (torch.float64, "default"): (1e-10, 1e-10),
    (torch.float32, "default"): (1e-5, 1e-5),
    (torch.float32, "fast"): (2e-3, 2e-2),
    (torch.float16, "default"): (1e-5, 2e-3),
    (torch.bfloat16, "default"): (1e-5, 1e-2),
}
F32, F64, BF16, F16 = torch.float32, torch.float64, torch.bfloat16, torch.float16


class Case(NamedTuple):
    n: int
    m: int
    dim: int
    dtype: torch.dtype
    precision: str = "default"
    layout: str = "contiguous"  # or "strided": x transposed, y every other column

    def label(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        return f"n={self.n} m={self.m} D={self.dim} {dtype} {self.precision} {self.layout}"


# n and m odd (no tile divides them) and unequal; both GPU paths (fused D <= 256, Gram blocks above)
GPU_CASES = (
    Case(1025, 333, 64, F32), Case(301, 199, 784, F32), Case(129, 67, 12288, F32),
    Case(1, 1, 64, F32), Case(1, 33, 3, F32), Case(257, 129, 2, F32), Case(131, 97, 3, F32),
    Case(333, 1025, 128, F32), Case(517, 259, 256, F32), Case(259, 131, 257, F32),
    Case(16385, 4099, 64, F32),
    Case(1025, 333, 64, F32, "fast"), Case(301, 199, 784, F32, "fast"), Case(129, 67, 12288, F32, "fast"),
    Case(1025, 333, 64, BF16), Case(301, 199, 784, BF16), Case(1025, 333, 64, F16), Case(301, 199, 784, F16),
    Case(517, 259, 64, F32, layout="strided"), Case(301, 199, 784, F32, layout="strided"),
    Case(257, 129, 3, F64), Case(131, 97, 257, F64),
)
ACCURACY_AFTER = 3  # the public API at the headline sizes runs after this many cases
# The interpreter runs float32 in IEEE arithmetic: every case keeps the float32 bounds.
REHEARSAL_CASES = (
    Case(13, 7, 2, F32), Case(1, 1, 3, F32), Case(9, 5, 300, F32), Case(11, 6, 12, F64),
    Case(7, 5, 12, F32, layout="strided"),
)


def make_inputs(case: Case, device: torch.device, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(0, I), y ~ N(0.1, 1.1^2 I), drawn in float64 and rounded to the case's dtype."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case.n, case.dim, generator=g, dtype=F64)
    y = torch.randn(case.m, case.dim, generator=g, dtype=F64) * 1.1 + 0.1
    x, y = x.to(device=device, dtype=case.dtype), y.to(device=device, dtype=case.dtype)
    if case.layout == "strided":
        x = x.t().contiguous().t()  # column-major storage
        y = torch.stack((y, y), 2).flatten(1)[:, ::2]  # row stride 2D, column stride 2
    return x, y


def _grad_error(got: torch.Tensor, want: torch.Tensor, unit: torch.Tensor) -> float:
    scale = want.norm() if want.norm() > 0 else unit.norm()
    return ((got.double().cpu() - want.cpu()).norm() / scale.cpu().clamp_min(1e-300)).item()


def check_op(be: gpu_backends.GpuBackend, name: str, case: Case, x, y, want: Dict[str, torch.Tensor]) -> dict:
    """Calls the op twice and compares with the reference; the fields of its row."""
    value_tol, grad_tol = TOLERANCE[(case.dtype, case.precision)]
    t0 = time.monotonic()
    first = op_table.call(be.namespace, name, x, y, GAMMA, case.precision)
    second = op_table.call(be.namespace, name, x, y, GAMMA, case.precision)
    problems, value_err, grad_err = [], None, None
    for quantity, got in zip(op_table.OPS[name].returns, first):
        ref = want[quantity]
        if not torch.isfinite(got).all():
            problems.append(f"{quantity} not finite")
        if ref.dim() == 0:
            if got.shape != () or got.dtype != F64:
                problems.append(f"{quantity}: {got.dtype} {tuple(got.shape)}, want a 0-dim float64")
            value_err = abs(got.item() - ref.item()) / ref.item()
        else:
            sample = x if quantity.endswith("/dx") else y
            if got.shape != sample.shape or got.dtype != sample.dtype or not got.is_contiguous():
                problems.append(f"{quantity}: {got.dtype} {tuple(got.shape)} contiguous={got.is_contiguous()}, "
                                f"want {sample.dtype} {tuple(sample.shape)} contiguous")
            err = _grad_error(got, ref, want["dS/dx"])
            grad_err = err if grad_err is None else max(grad_err, err)
    bit_equal = all(torch.equal(a, b) for a, b in zip(first, second))
    if value_err is not None and not value_err <= value_tol:
        problems.append(f"value error {value_err:.2e} > {value_tol:g}")
    if grad_err is not None and not grad_err <= grad_tol:
        problems.append(f"gradient error {grad_err:.2e} > {grad_tol:g}")
    if not bit_equal:
        problems.append("two calls differ")
    return {"status": "failed" if problems else "ok", "reason": "; ".join(problems), "value_rel_err": value_err,
            "grad_rel_l2": grad_err, "value_rtol": value_tol, "grad_rel_l2_tol": grad_tol, "bit_equal": bit_equal,
            "seconds": round(time.monotonic() - t0, 3)}


def _case_fields(be, case: Case) -> dict:
    return {"backend": be.label, "op_namespace": be.namespace, "n": case.n, "m": case.m, "D": case.dim,
            "dtype": str(case.dtype).replace("torch.", ""), "precision": case.precision, "layout": case.layout}


def run(out, budget_s: float, rehearse: bool) -> int:
    """Runs every case within the budget; exit code 1 when any row failed."""
    deadline = time.monotonic() + budget_s
    device = gpu_backends.device(rehearse)
    runnable = []
    for be in gpu_backends.gpu_backends(rehearse):
        if be.unavailable:
            rows.append(out, STEP, be.label, "skipped", backend=be.label, reason=be.unavailable)
        else:
            runnable.append((be, op_table.available(be.namespace)))
    pinned = gpu_backends.pin_first_configs() if any(be.label == "triton" for be, _ in runnable) else []

    def emit(name, status, fields):
        rows.append(out, STEP, name, status, **fields)
        print(f"[correctness] {status:6s} {name} {fields.get('reason', '')}", flush=True)

    def check_case(case) -> int:
        if time.monotonic() > deadline:
            emit(case.label(), "skipped", {"reason": f"the step's budget of {budget_s:g} s is spent"})
            return 0
        x, y = make_inputs(case, device)
        want = op_table.expected(x, y, GAMMA)
        failures = 0
        for be, names in runnable:
            for name in names:
                try:
                    fields = check_op(be, name, case, x, y, want)
                except Exception as exc:  # recorded; the next op still runs
                    fields = {"status": "failed", "reason": describe_error(exc)}
                status = fields.pop("status")
                failures += status == "failed"
                emit(f"{be.label}.{name} {case.label()}", status, {"op": name, **_case_fields(be, case), **fields})
        return failures

    cases = REHEARSAL_CASES if rehearse else GPU_CASES
    failed = sum(check_case(c) for c in cases[:ACCURACY_AFTER])  # in order of value: the first cases,
    failed += accuracy.run_all([be.label for be, _ in runnable], device, rehearse, deadline, emit)  # the API,
    failed += sum(check_case(c) for c in cases[ACCURACY_AFTER:])  # then the rest
    if pinned:
        fields = gpu_backends.pinning_fields(pinned)
        status = "ok" if fields["max_kept"] == 1 else "failed"
        failed += status == "failed"
        emit("autotune pinning", status, fields)
    return 1 if failed else 0
