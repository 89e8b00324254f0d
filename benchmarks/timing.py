"""Timing and peak memory of one benchmark call, on CUDA or on the CPU: `measure`, the one timer of
every benchmark here (benchmarks.run's sweep and so the GPU kit's headline step, the roofline ceilings,
benchmarks.batch_memory and the kit's training step, benchmarks/cpu_one_pass.py and
benchmarks/test_kernel_sum_cpu.py). It runs warm-up calls, then repeats, and reports the median, min,
max and 20th / 80th percentiles of the per-call times (`Measurement.stats`, ms) beside the raw times.

GPU: every timed call sits between two CUDA events on the current stream and is synchronised
before the next starts, so each raw time is one call's device time. We time calls ourselves rather
than through `triton.testing.do_bench`: do_bench spends five calls estimating and then repeats for a
fixed number of milliseconds, which suits microsecond kernels but not the multi-second calls at
large n, and it returns no per-call raw times.
CPU: `time.perf_counter` around each call.

Peak memory, in bytes:
  GPU: `torch.cuda.max_memory_allocated` over the timed calls after `reset_peak_memory_stats`;
       `peak` is that maximum, `extra` is the maximum minus what was allocated before (inputs, a
       retained autograd graph), i.e. the working memory of one call.
  CPU: resident set size sampled every `CPU_SAMPLE_S` by a thread from /proc/self/statm over the
       warm-up and the timed calls; `extra` is its growth above the RSS before the warm-up. It is
       approximate: spikes shorter than a sample can be missed, and the allocator may keep freed
       memory mapped (which is why the base is taken before the warm-up).
"""
import gc
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import torch

CPU_SAMPLE_S = 0.002
QUANTILES = (20, 80)  # percentiles reported beside the median (as triton's do_bench)


def is_oom(exc: BaseException) -> bool:
    """True for an out-of-memory error of the CUDA caching allocator, the CPU allocator or KeOps."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def describe_error(exc: BaseException) -> str:
    """'TypeName: first line of the message', for a results row or an availability note."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


def release_memory(device: torch.device) -> None:
    """Frees what a failed or finished call left behind, so the next cell starts clean."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _RssSampler:
    """Samples the RSS in a background thread; `peak` is the largest value seen."""

    def __init__(self):
        self.base = _rss_bytes()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(CPU_SAMPLE_S):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


@dataclass
class Measurement:
    """Raw per-call times (ms) of the timed repeats, and peak memory (bytes) of the calls."""

    times_ms: List[float]
    warmup_ms: List[float]
    peak_bytes: int
    extra_bytes: int
    stats: dict = field(init=False)

    def __post_init__(self):
        t = sorted(self.times_ms)
        pct = statistics.quantiles(t, n=100, method="inclusive") if len(t) > 1 else [t[0]] * 99
        self.stats = {"median_ms": statistics.median(t), "min_ms": t[0], "max_ms": t[-1],
                      **{f"q{p}_ms": pct[p - 1] for p in QUANTILES}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of one call: CUDA events on the GPU, perf_counter on the CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def measure(fn: Callable[[], object], device: torch.device, *, repeats: int, warmup: int = 1,
            cell_seconds: Optional[float] = None, memory: bool = True) -> Measurement:
    """Runs `warmup` untimed calls (compilation, autotuning), then up to `repeats` timed ones.

    cell_seconds: the timed calls stop early once together they took this long (at least one is
    timed), so very large sizes cost a bounded time.
    memory: False skips the CPU's RSS sampling thread (it shares the cores with the calls timed; the
    peak and extra bytes are then 0 on the CPU).
    Out-of-memory errors propagate (see `is_oom`); the caller records them.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    sampler = _RssSampler() if device.type == "cpu" and memory else None
    try:
        warm = []
        for _ in range(warmup):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            warm.append((time.perf_counter() - t0) * 1e3)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        while len(times) < repeats and (cell_seconds is None or sum(times) < cell_seconds * 1e3):
            times.append(_time_call(fn, device))
    finally:
        if sampler is not None:
            sampler.stop()
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        extra = peak - before
    elif sampler is not None:
        peak, extra = sampler.peak, sampler.peak - sampler.base
    else:
        peak = extra = 0
    return Measurement(times, warm, int(peak), int(extra))
