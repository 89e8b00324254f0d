"""Step 5: the headline benchmarks, timed by benchmarks.run.Sweep, each row appended as measured.

Sizes (GPU; a rehearsal runs the same structure at tiny sizes on the CPU):
  cw_normality(z), D = 64, n = 4096, 16384, 65536      reference, triton, cuda, keops
  cw_distance(x, y), n = m = 4096, D = 12288            the same, triton and cuda in precision
                                                        default, fast (TF32) and bf16 inputs
  cw_normality(z), n = 2^20, D = 64 (time, peak memory) triton, cuda (fwd+bwd only)
  cw_normality(z), n = 16384, D = 8 and 128             reference, triton, cuda, keops
One row per (provider, size, pass in fwd / bwd / fwd+bwd): the Sweep's fields (median_ms, q20/q80,
min/max, raw times_ms and warmup_ms, peak_mem_bytes, extra_mem_bytes = working memory above the
inputs, flops, bytes), the fraction of step 2's ceilings (roofline_fraction, tflops, ceiling) and
speedup_vs_reference (reference median / this median, where the reference ran at that size).
Status: ok; skipped (provider unavailable, time budget, or the reference out of memory: it does
not fit); failed (an error, or a fused provider out of memory). KeOps runs when pykeops imports.
"""
import os
import time
from pathlib import Path

from .. import providers as prov
from .. import roofline
from ..run import Sweep
from ..suites import Suite
from . import ceilings, gpu_backends, rows

STEP = "benchmarks"
PAUSE_ENV = "GPU_CHECK_TEST_PAUSE_S"  # seconds to sleep after each cell: lets a test kill the kit mid-step
LATENT = ("reference", "triton", "cuda", "keops")
ALL, SCALE = tuple(roofline.PASSES), ("fwd+bwd",)
PLAN = {  # rehearse -> ((suite, provider patterns, passes), ...), timing settings
    False: (((Suite("latent", "normality", (64,), (4096, 16384, 65536)), LATENT, ALL),
             (Suite("data", "distance", (12288,), (4096,)), ("reference", "triton*", "cuda*", "keops"), ALL),
             (Suite("scale", "normality", (64,), (1 << 20,)), ("triton", "cuda"), SCALE),
             (Suite("latent", "normality", (8, 128), (16384,)), LATENT, ALL)),
            dict(repeats=5, warmup=1, cell_seconds=2.0, max_call_seconds=20.0)),
    True: (((Suite("latent", "normality", (16,), (64, 128, 256)), ("cpu",) + LATENT, ALL),
            (Suite("data", "distance", (96,), (64,)), ("reference", "cpu", "triton*", "cuda*", "keops"), ALL),
            (Suite("scale", "normality", (16,), (1024,)), ("cpu", "triton", "cuda"), SCALE),
            (Suite("latent", "normality", (8, 32), (128,)), ("cpu",) + LATENT, ALL)),
           dict(repeats=2, warmup=1, cell_seconds=0.5, max_call_seconds=5.0)),
}


def availability(provider, device, rehearse: bool):
    """None when the provider can run here, else why not. On the GPU, Triton and CUDA are judged
    by the kit's backend checks instead of the providers' probe (a probe autotunes every config)."""
    if rehearse or provider.backend not in ("triton", "cuda"):
        return provider.check(device)
    return {b.label: b.unavailable for b in gpu_backends.gpu_backends(rehearse)}[provider.backend]


def _status(row: dict) -> tuple:
    """The kit's status and reason of a Sweep row (ok, OOM, error or skipped)."""
    if row["status"] == "OOM":
        if row["provider"] == "reference":
            return "skipped", f"does not fit: {row['reason']}"
        return "failed", f"out of memory: {row['reason']}"
    return {"ok": "ok", "skipped": "skipped"}.get(row["status"], "failed"), row.get("reason", "")


class Recorder:
    """Turns Sweep rows into result rows: status, roofline fraction, speedup vs the reference."""

    def __init__(self, out: Path, ceilings_now):
        self.out, self.ceilings = out, ceilings_now
        self.reference_ms = {}  # (workload, n, D, pass) -> reference median
        self.pause = float(os.environ.get(PAUSE_ENV, "0"))

    def __call__(self, got) -> None:
        for r in got:
            r = dict(r)
            status, reason = _status(r)
            r["sweep_status"], r["reason"] = r.pop("status"), reason
            key = (r["workload"], r["n"], r["D"], r["pass"])
            if status == "ok":
                if self.ceilings:
                    roofline.add_roofline(r, self.ceilings)
                if r["provider"] == "reference":
                    self.reference_ms[key] = r["median_ms"]
                elif key in self.reference_ms:
                    r["speedup_vs_reference"] = self.reference_ms[key] / r["median_ms"]
            name = f"{r['workload']} {r['provider']} n={r['n']} D={r['D']} {r['pass']}"
            rows.append(self.out, STEP, name, status, **r)
        time.sleep(self.pause)


def run(out: Path, budget_s: float, rehearse: bool) -> int:
    device = gpu_backends.device(rehearse)
    plan, timing = PLAN[rehearse]
    record = Recorder(out, ceilings.from_rows(rows.read(out)))
    deadline = time.monotonic() + budget_s
    checked = {}
    for suite, patterns, passes in plan:
        runnable = []
        for p in prov.select(patterns):
            if p.name not in checked:
                checked[p.name] = availability(p, device, rehearse)
                if checked[p.name]:
                    rows.append(out, STEP, f"provider {p.name}", "skipped", provider=p.name, reason=checked[p.name])
            if checked[p.name] is None:
                runnable.append(p)
        sweep = Sweep(device, list(passes), time_budget=max(deadline - time.monotonic(), 1e-3), on_rows=record,
                      log=lambda s: print(s, flush=True), **timing)
        sweep.run([suite], runnable)
    return 0
