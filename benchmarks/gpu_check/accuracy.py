"""Part of step 3: the public API's accuracy at the headline sizes, every GPU backend and mode.

cw_normality(z) at n = 16384, D = 64 and cw_distance(x, y) (gradient w.r.t. y) at n = m = 4096,
D = 12288, inputs as in benchmarks.suites, through the benchmark providers (<backend>, -fast,
-bf16), against cw_normality_blocked / cw_distance_blocked in float64 on the same (rounded) inputs.
Row fields: value_err_over_scale = |value - reference| / scale, where scale is C0 times the sum of
the magnitudes of the formula's terms (the value itself is a small difference of large terms);
grad_rel_l2; their tolerances ACCURACY_TOL by mode.
"""
import time

import torch

from lcw_fast import reference

from .. import providers as prov
from ..suites import gamma_for
from ..timing import describe_error

SIZES = {False: (("normality", 16384, 64), ("distance", 4096, 12288)),  # by rehearse
         True: (("normality", 100, 16), ("distance", 64, 96))}
# (value error over the term scale, gradient rel. L2); bf16: the result itself is rounded to bf16
ACCURACY_TOL = {"default": (1e-5, 1e-5), "fast": (2e-3, 2e-2), "bf16": (4e-3, 1e-2)}


def _term_scale(workload: str, a: torch.Tensor, b, gamma: float) -> float:
    """C0 (mean k_aa + mean k_bb + 2 mean k_ab) for a distance, C0 (mean k_aa + (1+gamma)^-1/2 +
    2 mean_i prior term) for a normality (b unused), in float64."""
    with torch.no_grad():
        a = a.double()
        n, dim = a.shape
        own = reference.kernel_sum_blocked(a, a, gamma).item() / n**2
        if workload == "normality":
            prior = torch.rsqrt(gamma + 0.5 + a.square().sum(1) / (2 * dim - 3)).mean().item()
            return reference.C0 * (own + (1 + gamma) ** -0.5 + 2 * prior)
        b = b.double()
        m = b.shape[0]
        return reference.C0 * (own + reference.kernel_sum_blocked(b, b, gamma).item() / m**2
                               + 2 * reference.kernel_sum_blocked(a, b, gamma).item() / (n * m))


def measure(provider: prov.Provider, workload: str, n: int, dim: int, device: torch.device) -> dict:
    """Value and gradient errors of one provider at one size (fields of its row)."""
    torch.manual_seed(0)
    gamma = gamma_for(workload, n)
    value_tol, grad_tol = ACCURACY_TOL[provider.mode]
    t0 = time.monotonic()
    if workload == "normality":
        x, y = None, torch.randn(n, dim, device=device).to(provider.dtype).requires_grad_()
        value = provider.normality(y, gamma)
        yd = y.detach().double().requires_grad_()
        expected = reference.cw_normality_blocked(yd, gamma)
        scale = _term_scale(workload, y.detach(), None, gamma)
    else:
        x = torch.rand(n, dim, device=device).to(provider.dtype)
        y = torch.rand(n, dim, device=device).to(provider.dtype).requires_grad_()
        value = provider.distance(x, y, gamma)
        yd = y.detach().double().requires_grad_()
        expected = reference.cw_distance_blocked(x.double(), yd, gamma)
        scale = _term_scale(workload, x, y.detach(), gamma)
    (grad,) = torch.autograd.grad(value, y)
    (want,) = torch.autograd.grad(expected, yd)
    value_err = abs(value.item() - expected.item()) / scale
    grad_err = ((grad.double() - want).norm() / want.norm()).item()
    problems = [f"value error {value_err:.2e} of the term scale > {value_tol:g}"] if not value_err <= value_tol else []
    problems += [f"gradient error {grad_err:.2e} > {grad_tol:g}"] if not grad_err <= grad_tol else []
    return {"status": "failed" if problems else "ok", "reason": "; ".join(problems), "value": value.item(),
            "reference_value": expected.item(), "term_scale": scale, "value_err_over_scale": value_err,
            "grad_rel_l2": grad_err, "value_tol": value_tol, "grad_rel_l2_tol": grad_tol,
            "seconds": round(time.monotonic() - t0, 2)}


def run_all(backend_labels, device, rehearse: bool, deadline: float, emit) -> int:
    """Every (size, backend, mode); emit(name, status, fields) per row; returns the failures."""
    failed = 0
    for workload, n, dim in SIZES[rehearse]:
        for label in backend_labels:
            for mode in prov.MODES if workload == "distance" else ("default", "fast"):
                provider = prov.PROVIDERS[label if mode == "default" else f"{label}-{mode}"]
                name = f"accuracy {workload} {provider.name} n={n} D={dim}"
                fields = {"workload": workload, "provider": provider.name, "backend": label, "mode": mode,
                          "n": n, "m": n, "D": dim}
                if time.monotonic() > deadline:
                    emit(name, "skipped", {**fields, "reason": "the step's budget is spent"})
                    continue
                try:
                    got = measure(provider, workload, n, dim, device)
                except Exception as exc:  # recorded; the next one still runs
                    got = {"status": "failed", "reason": describe_error(exc)}
                status = got.pop("status")
                failed += status == "failed"
                emit(name, status, {**fields, **got})
    return failed
