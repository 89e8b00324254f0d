"""Benchmark sweep: every provider at every size of the chosen suites, into CSV/JSON, Markdown and PNG.

    python -m benchmarks.run --suite all                       # GPU: full grid; CPU: the cpu grid
    python -m benchmarks.run --suite latent --grid tiny --providers reference,cpu --out /tmp/b

For each suite, D and n (ascending), every selected provider that can run on the device is timed in
each pass. A provider that runs out of memory at some n is recorded as "OOM" there and skipped for
larger n of that D, so its largest n shows; likewise after an error, or when the time of its last
call, scaled by (n_next / n)^2, exceeds --max-call-seconds. Results: see benchmarks/report.py.
"""
import argparse
import datetime
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import torch

import lcw_fast
from training.runs import cpu_model

from . import providers as prov
from . import report, roofline, suites
from .timing import describe_error, is_oom, measure, release_memory

ROOT = Path(__file__).resolve().parent.parent
SUITES = ("latent", "data", "scale")
DEFAULTS = {  # per device type: repeats, seconds of timed repeats per pass, max seconds per call
    "cuda": dict(grid="full", repeats=10, cell_seconds=10.0, max_call_seconds=30.0),
    "cpu": dict(grid="cpu", repeats=3, cell_seconds=3.0, max_call_seconds=5.0),
}


def _csv(kind):
    def parse(text: str):
        return [kind(v) for v in text.split(",") if v.strip()]

    return parse


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", choices=SUITES + ("all",), default="all",
                   help="latent: cw_normality at latent D; data: cw_distance at image D; "
                        "scale: the largest n at the headline D; all (default): the three")
    p.add_argument("--grid", choices=tuple(suites.GRIDS), default=None,
                   help="size grid: full (n 256..1M, D 8..12288; for a GPU), cpu (a few minutes on a "
                        "small CPU), tiny (seconds; what the test suite runs). Default: full on CUDA, cpu on CPU")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to run; auto (default) = cuda when a GPU is visible")
    p.add_argument("--providers", type=_csv(str), default=None,
                   help="comma-separated names or shell patterns, e.g. 'reference,triton*'; default: all "
                        f"of {', '.join(prov.PROVIDERS)} (those that cannot run here are recorded and skipped)")
    p.add_argument("--passes", type=_csv(str), default=list(roofline.PASSES),
                   help="comma-separated subset of fwd, bwd, fwd+bwd (default: all three)")
    p.add_argument("--dims", type=_csv(int), default=None,
                   help="comma-separated D values: keep only these D of the grid (default: all)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed calls per pass (fewer where --cell-seconds stops them); default 10 on CUDA, 3 on CPU")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed calls before the timed ones, which absorb compilation and autotuning (default 1)")
    p.add_argument("--cell-seconds", type=float, default=None,
                   help="cap on the time of the timed calls of one pass: no further repeat starts once the "
                        "timed calls took this long (at least one is timed); default 10 on CUDA, 3 on CPU")
    p.add_argument("--max-call-seconds", type=float, default=None,
                   help="skip a provider's larger n once its predicted call time (last time x (n'/n)^2) "
                        "exceeds this; default 30 on CUDA, 5 on CPU")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds for the whole sweep; cells after it are recorded as skipped and the "
                        "results are written (keeps a run inside a device command's limit)")
    p.add_argument("--headline-dims", type=_csv(int), default=None,
                   help="D values of the summary's headline tables (default: the grid's, 64,12288 for full)")
    p.add_argument("--headline-ns", type=_csv(int), default=None,
                   help="n columns of the headline tables (default: the grid's, 4096,16384,65536 for full)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder; default benchmarks/results/<device-slug>/")
    p.add_argument("--label", default=None,
                   help="file name stem of this run's CSV/JSON (default: the suite name)")
    args = p.parse_args(argv)
    bad = [x for x in args.passes if x not in roofline.PASSES]
    if bad:
        p.error(f"--passes: unknown {bad}; choose from {', '.join(roofline.PASSES)}")
    return args


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible")
    return torch.device(choice)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"{cpu_model()} (CPU, {threads} thread{'' if threads == 1 else 's'})"


def slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def git_commit() -> tuple:
    """(commit, dirty) of the checkout, or (LCW_FAST_GIT_COMMIT, None) when that is set: device
    copies of the tree have no git metadata, so the caller names the commit."""
    if os.environ.get("LCW_FAST_GIT_COMMIT"):
        return os.environ["LCW_FAST_GIT_COMMIT"], None
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no",
                                 "--", ".", ":!benchmarks/results"],  # results being written are not code
                                capture_output=True, text=True, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown", None


def _triton_version() -> Optional[str]:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def _row(provider, suite, n, dim, pass_name, status, reason="") -> dict:
    return {"suite": suite.name, "workload": suite.workload, "provider": provider.name,
            "backend": provider.backend, "mode": provider.mode, "dtype": str(provider.dtype).replace("torch.", ""),
            "pass": pass_name, "n": n, "m": n, "D": dim, "status": status, "reason": reason}


class Sweep:
    """Runs cells and keeps, per provider and (suite, D), why its larger n are skipped."""

    def __init__(self, device, passes, *, repeats, warmup, cell_seconds, max_call_seconds,
                 time_budget=None, seed=0, log=print, on_rows=None):
        """on_rows(rows) is called with each cell's rows (and each size's skipped rows) as they are made."""
        self.device, self.passes = device, passes
        self.on_rows = on_rows or (lambda got: None)
        self.repeats, self.warmup, self.cell_seconds = repeats, warmup, cell_seconds
        self.max_call_seconds, self.seed, self.log = max_call_seconds, seed, log
        self.deadline = time.monotonic() + time_budget if time_budget else math.inf
        self.time_budget = time_budget
        self.budget_hit = False

    @staticmethod
    def _finish(row: dict, m, cost) -> dict:
        row.update(repeats=len(m.times_ms), **m.stats, peak_mem_bytes=m.peak_bytes, extra_mem_bytes=m.extra_bytes,
                   flops=cost.flops, bytes=cost.bytes, warmup_ms=m.warmup_ms, times_ms=m.times_ms)
        return row

    def cell(self, provider, suite, n: int, dim: int) -> List[dict]:
        """All passes of one provider at one size; the rows say ok, OOM or error."""
        costs = roofline.op_cost(suite.workload, n, n, dim, provider.dtype.itemsize)
        rows, failure = [], None
        try:
            work = suites.make_cell(provider, suite.workload, n, dim, self.device, self.seed)
        except Exception as exc:  # the inputs alone may not fit
            work, failure = None, exc
        for pass_name in self.passes:
            row = _row(provider, suite, n, dim, pass_name, "ok")
            if failure is None:
                try:
                    m = measure(work.runner(pass_name), self.device, repeats=self.repeats, warmup=self.warmup,
                                cell_seconds=self.cell_seconds)
                    rows.append(self._finish(row, m, costs[pass_name]))
                    continue
                except Exception as exc:
                    failure = exc
                    row["reason"] = describe_error(exc)
            else:
                row["reason"] = f"after {describe_error(failure)}"
            row["status"] = "OOM" if is_oom(failure) else "error"
            rows.append(row)
        del work, failure  # frees the inputs and any traceback holding tensors before the next cell
        release_memory(self.device)
        return rows

    def run(self, suite_list, providers) -> List[dict]:
        rows = []
        for suite in suite_list:
            for dim in suite.dims:
                stop = {}  # provider name -> reason its larger n are skipped
                last = {}  # provider name -> (n, slowest median seconds of its passes)
                for n in suite.ns:
                    for p in providers:
                        predicted = self._predicted_call_seconds(last.get(p.name), n)
                        reason = stop.get(p.name) or self._budget_reason(predicted) or self._cap_reason(predicted)
                        if reason:
                            stop[p.name] = reason
                            skipped = [_row(p, suite, n, dim, x, "skipped", reason) for x in self.passes]
                            rows += skipped
                            self.on_rows(skipped)
                            continue
                        t0 = time.monotonic()
                        got = self.cell(p, suite, n, dim)
                        rows += got
                        self.on_rows(got)
                        self.log(self._describe(p, suite, n, dim, got, time.monotonic() - t0))
                        failed = [r for r in got if r["status"] != "ok"]
                        if failed:
                            stop[p.name] = f"{failed[0]['status']} at n = {n}"
                        else:
                            last[p.name] = (n, max(r["median_ms"] for r in got) / 1e3)
        return rows

    @staticmethod
    def _predicted_call_seconds(last, n: int) -> float:
        """The slowest pass at the provider's last measured n, scaled by (n / n_last)^2 (0 if none)."""
        if last is None:
            return 0.0
        n0, seconds = last
        return seconds * (n / n0) ** 2

    def _budget_reason(self, predicted: float) -> Optional[str]:
        """Skip once the budget is spent, or when the cell (warm-up and at least one timed call per
        pass) would not end inside it."""
        if time.monotonic() + predicted * (self.warmup + 1) * len(self.passes) > self.deadline:
            self.budget_hit = True
            return f"time budget of {self.time_budget:g} s (--time-budget) spent or too short for this size"
        return None

    def _cap_reason(self, predicted: float) -> Optional[str]:
        if predicted > self.max_call_seconds:
            return f"time cap: predicted {predicted:.3g} s per call > {self.max_call_seconds:g} s (--max-call-seconds)"
        return None

    @staticmethod
    def _describe(p, suite, n, dim, got, seconds) -> str:
        parts = [f"{r['pass']} {r['median_ms']:.4g} ms" if r["status"] == "ok" else f"{r['pass']} {r['status']}"
                 for r in got]
        return f"[{suite.name}] {p.name:12s} D={dim:<6d} n={n:<8d} " + ", ".join(parts) + f"  ({seconds:.1f} s)"


def availability(selected, device) -> dict:
    """name -> "available" or the reason the provider cannot run on `device`."""
    return {p.name: p.check(device) or "available" for p in selected}


def main(argv: Optional[Sequence[str]] = None) -> Path:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    defaults = DEFAULTS[device.type]
    grid = suites.GRIDS[args.grid or defaults["grid"]]
    names = SUITES if args.suite == "all" else (args.suite,)
    suite_list = [s for name in names for s in grid.suites[name]]
    if args.dims:
        suite_list = [suites.Suite(s.name, s.workload, tuple(d for d in s.dims if d in args.dims), s.ns)
                      for s in suite_list]
    name = device_name(device)
    out = args.out or ROOT / "benchmarks" / "results" / slug(name)
    settings = {
        "argv": list(sys.argv[1:] if argv is None else argv), "suites": list(names), "grid": args.grid or defaults["grid"],
        "passes": args.passes, "repeats": args.repeats or defaults["repeats"], "warmup": args.warmup,
        "cell_seconds": args.cell_seconds or defaults["cell_seconds"],
        "max_call_seconds": args.max_call_seconds or defaults["max_call_seconds"],
        "time_budget": args.time_budget, "seed": args.seed,
        "headline_dims": args.headline_dims or list(grid.headline_dims),
        "headline_ns": args.headline_ns or list(grid.headline_ns),
        "sizes": [{"suite": s.name, "workload": s.workload, "dims": list(s.dims), "ns": list(s.ns)} for s in suite_list],
    }
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    selected = prov.select(args.providers)
    avail = availability(selected, device)
    runnable = [p for p in selected if avail[p.name] == "available"]
    for pname, why in avail.items():
        print(f"provider {pname:12s} {why}", flush=True)
    size, copy_bytes = grid.ceiling_sizes or (None, None)

    def ceilings_now(when: str) -> dict:
        c = roofline.measure_ceilings(device, repeats=settings["repeats"], size=size, copy_bytes=copy_bytes)
        print(f"ceilings {when}: " + ", ".join(f"{k}={v:.4g}" for k, v in c.items() if v is not None), flush=True)
        return c

    before = ceilings_now("before")
    sweep = Sweep(device, args.passes, repeats=settings["repeats"], warmup=args.warmup,
                  cell_seconds=settings["cell_seconds"], max_call_seconds=settings["max_call_seconds"],
                  time_budget=args.time_budget, seed=args.seed, log=lambda s: print(s, flush=True))
    rows = sweep.run(suite_list, runnable)
    after = ceilings_now("after")
    ceilings = roofline.best_ceilings(before, after)
    rows = [roofline.add_roofline(r, ceilings) if r["status"] == "ok" else r for r in rows]
    commit, dirty = git_commit()
    meta = {
        "device": name, "device_slug": slug(name), "device_type": device.type, "torch": torch.__version__,
        "triton": _triton_version(), "cuda": torch.version.cuda, "keops": prov.keops_version(),
        "lcw_fast": lcw_fast.__version__, "python": platform.python_version(), "cpu": cpu_model(),
        "threads": torch.get_num_threads(), "git_commit": commit, "git_dirty": dirty, "started": started,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "stopped_early": sweep.budget_hit, "settings": settings, "ceilings": ceilings,
        "ceilings_before": before, "ceilings_after": after, "providers": avail,
    }
    json_path, csv_path = report.write_run(out, args.label or args.suite, meta, rows)
    written = report.write_summary(out, settings["headline_dims"], settings["headline_ns"])
    print("wrote " + ", ".join(str(p) for p in [json_path, csv_path, *written]), flush=True)
    return out


if __name__ == "__main__":
    main()
