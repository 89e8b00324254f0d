"""Step 6: CelebA-architecture training steps (conv autoencoder, cw2 loss, random 64x64 images).

Rows, for the reference loss (the paper's code path) and for backend "auto":
  "batch <B> <backend>"     images/s over a few timed Adam steps and peak memory at batch B = 256
  "probe <B> <backend>"     one step at batch B under a memory cap of BUDGET_BYTES (CUDA: the
                            caching allocator's per-process fraction, so a step needing more runs
                            out of memory): fits, oom, peak_memory_bytes
  "largest batch <backend>" the largest batch that fitted (batches double from 256, then
                            REFINE bisection steps between the last fit and the first failure, in
                            multiples of 64) and the first that did not
A rehearsal runs the same code at batch 8 (probes up to 16) on the CPU, without a cap (it cannot
limit CPU memory) and with the CelebA network narrowed to 1/16 of its channels: at full width it
takes seconds per image on a small shared CPU.
"""
import time
from pathlib import Path

import torch

from .. import batch_memory
from ..timing import describe_error, is_oom, release_memory
from . import gpu_backends, rows

STEP = "training"
BACKENDS = ("reference", "auto")
LATENT, LAM = 128, 0.2
PLAN = {  # rehearse -> settings
    False: dict(batch=256, steps=5, warmup=2, budget_bytes=30 * 10**9, limit=1 << 17, refine=2, multiple=64),
    True: dict(batch=8, steps=1, warmup=1, budget_bytes=None, limit=16, refine=1, multiple=4, width=1 / 16),
}
MODE_OF_BACKEND = {"reference": "paper", "auto": "fused"}  # benchmarks.batch_memory's names


def train_steps(backend: str, batch: int, steps: int, warmup: int, device: torch.device, width: float = 1.0) -> dict:
    """images_per_s (the batch over the median step), the steps' median / min / max ms, peak_memory_bytes
    and loss of cw2 training steps of the CelebA autoencoder at `width` times its channels; the kit's one
    call into benchmarks.batch_memory.measure_step (timed by benchmarks.timing.measure)."""
    got = batch_memory.measure_step(MODE_OF_BACKEND[backend], batch, 0, device, width=width, latent=LATENT, lam=LAM,
                                    steps=steps, warmup=warmup)
    return {"backend": backend, "images_per_s": got["images_per_s"], "median_ms": got["median_ms"],
            "min_ms": got["min_ms"], "max_ms": got["max_ms"], "peak_memory_bytes": got["peak_bytes"],
            "loss": got["loss"]}


class MemoryCap:
    """On CUDA, caps this process's allocations at `limit` bytes while in the block."""

    def __init__(self, device: torch.device, limit):
        self.device, self.limit = device, limit

    def __enter__(self):
        if self.device.type == "cuda" and self.limit:
            # torch wants the device's index: "cuda" alone is refused
            self.device = torch.device("cuda", torch.cuda.current_device() if self.device.index is None
                                       else self.device.index)
            total = torch.cuda.get_device_properties(self.device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, self.limit / total), self.device)
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda" and self.limit:
            torch.cuda.set_per_process_memory_fraction(1.0, self.device)


def _probe(out, backend, batch, device, plan) -> tuple:
    """One training step at `batch` under the cap; writes its row; (fitted, seconds)."""
    fields = {"backend": backend, "batch": batch, "budget_bytes": plan["budget_bytes"]}
    t0 = time.monotonic()
    try:
        with MemoryCap(device, plan["budget_bytes"]):
            got = train_steps(backend, batch, 1, 0, device, plan.get("width", 1.0))
        fits = plan["budget_bytes"] is None or got["peak_memory_bytes"] <= plan["budget_bytes"]
        fields.update(fits=fits, oom=False, peak_memory_bytes=got["peak_memory_bytes"])
    except Exception as exc:
        if not is_oom(exc):
            raise
        fits = False
        fields.update(fits=False, oom=True, reason=describe_error(exc))
    release_memory(device)
    seconds = time.monotonic() - t0
    rows.append(out, STEP, f"probe {batch} {backend}", "ok", seconds=round(seconds, 2), **fields)
    return fits, seconds


def largest_batch(out, backend, device, plan, deadline) -> None:
    """Doubling search from plan["batch"], then bisection; one row per probe and a result row.
    A probe is not started when the last one's time, doubled with the batch, would pass `deadline`."""
    fit = fail = None
    batch, reason, last_s = plan["batch"], "", 0.0
    while batch <= plan["limit"]:
        if time.monotonic() + 2.5 * last_s > deadline:
            reason = "search stopped by the step's budget"
            break
        fits, last_s = _probe(out, backend, batch, device, plan)
        if not fits:
            fail = batch
            break
        fit, batch = batch, batch * 2
    else:
        reason = f"search stopped at its limit of {plan['limit']}"
    for _ in range(plan["refine"]):
        mid = None if fit is None or fail is None else (fit + fail) // 2 // plan["multiple"] * plan["multiple"]
        if mid is None or mid <= fit or time.monotonic() + 1.5 * last_s > deadline:
            break
        fits, last_s = _probe(out, backend, mid, device, plan)
        fit, fail = (mid, fail) if fits else (fit, mid)
    rows.append(out, STEP, f"largest batch {backend}", "ok", backend=backend, largest_batch=fit,
                first_failing_batch=fail, budget_bytes=plan["budget_bytes"], reason=reason)


def run(out: Path, budget_s: float, rehearse: bool) -> int:
    device = gpu_backends.device(rehearse)
    plan = PLAN[rehearse]
    deadline = time.monotonic() + budget_s
    for backend in BACKENDS:
        got = train_steps(backend, plan["batch"], plan["steps"], plan["warmup"], device, plan.get("width", 1.0))
        release_memory(device)
        rows.append(out, STEP, f"batch {plan['batch']} {backend}", "ok", **got, batch=plan["batch"],
                    steps=plan["steps"], images="3x64x64", width=plan.get("width", 1.0))
        print(f"[training] {backend}: {got['images_per_s']:.1f} images/s at batch {plan['batch']}", flush=True)
    for i, backend in enumerate(BACKENDS):  # each search gets an equal share of the time left
        share = (deadline - time.monotonic()) / (len(BACKENDS) - i)
        if share <= 0:
            rows.append(out, STEP, f"largest batch {backend}", "skipped", backend=backend,
                        reason=f"the step's budget of {budget_s:g} s is spent")
            continue
        largest_batch(out, backend, device, plan, time.monotonic() + share)
    return 0
