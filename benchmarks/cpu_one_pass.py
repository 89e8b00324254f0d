"""CPU: cw_normality forward+backward against forward-only, and against an older build, in one run.

    python benchmarks/cpu_one_pass.py --old /tmp/kcpu-old --out results.csv [--threads 1 2] [--rounds 7]

--old is a checkout of an earlier commit with its extension built in place (e.g.
`git worktree add /tmp/kcpu-old <commit>` and `LCW_FAST_CPU_ONLY=1 python setup.py build_ext --inplace`
there). Each round runs one fresh worker process per tree (this one and --old, alternating which goes
first), which times, at each thread count and D, `cw_normality(z)` forward-only (z not requiring
grad) and forward+backward (z requiring grad, then `backward()`), each --calls calls after a warm-up
through this tree's benchmarks.timing.measure (loaded from its file, so the old tree's lcw_fast is
timed by the same timer). A round's two workers run back to back, so on a shared machine both trees
see about the same load; the CSV has one row per tree, thread count and D with the medians over the
rounds of the per-round medians (ms) and of the per-round ratio fwd+bwd / fwd, and the min and max of
every timed call (fwd_min_ms, fwd_max_ms, fwd_bwd_min_ms, fwd_bwd_max_ms).
Issue 11's target: ratio <= 3.0 at n = 4096, D = 64 and D = 8, and fwd+bwd faster than the old build.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import importlib.util, json, sys
import torch
import lcw_fast

n, dims, thread_counts, calls = json.loads(sys.argv[1])
assert lcw_fast.__file__.startswith(sys.argv[2]), lcw_fast.__file__
spec = importlib.util.spec_from_file_location("lcw_bench_timing", sys.argv[3])
timing = importlib.util.module_from_spec(spec)
spec.loader.exec_module(timing)

def stats(step):
    return timing.measure(step, torch.device("cpu"), repeats=calls, warmup=1, memory=False).stats

out = []
for threads in thread_counts:
    torch.set_num_threads(threads)
    for dim in dims:
        z = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
        zg = z.clone().requires_grad_(True)
        def fwd_bwd():
            zg.grad = None
            lcw_fast.cw_normality(zg, backend="cpu").backward()
        out.append({"threads": threads, "D": dim, "fwd": stats(lambda: lcw_fast.cw_normality(z, backend="cpu")),
                    "fwd_bwd": stats(fwd_bwd)})
print(json.dumps(out))
"""
TIMING = Path(__file__).resolve().parent / "timing.py"


def git_commit(tree: Path) -> str:
    run = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return run.stdout.strip() or "unknown"


def run_worker(tree: Path, n: int, dims, threads, calls: int) -> list:
    env = dict(os.environ, PYTHONPATH=str(tree))
    run = subprocess.run([sys.executable, "-c", WORKER, json.dumps([n, dims, threads, calls]), str(tree), str(TIMING)],
                         cwd=str(tree), env=env, capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(f"worker in {tree} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="checkout of the older commit, extension built")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 8])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7, help="worker pairs (medians are over these)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per worker and case")
    args = parser.parse_args(argv)
    trees = {"new": ROOT, "old": args.old.resolve()}
    samples = {name: [] for name in trees}
    for r in range(args.rounds):
        for name in (("new", "old") if r % 2 == 0 else ("old", "new")):
            samples[name].append(run_worker(trees[name], args.n, args.dims, args.threads, args.calls))
    rows = []
    for name, tree in trees.items():
        for i, case in enumerate(samples[name][0]):
            per_round = [s[i] for s in samples[name]]
            row = {"tree": name, "commit": git_commit(tree), "n": args.n, "D": case["D"], "threads": case["threads"],
                   "rounds": args.rounds}
            for p in ("fwd", "fwd_bwd"):
                row.update({f"{p}_ms": statistics.median(c[p]["median_ms"] for c in per_round),
                            f"{p}_min_ms": min(c[p]["min_ms"] for c in per_round),
                            f"{p}_max_ms": max(c[p]["max_ms"] for c in per_round)})
            row["ratio"] = statistics.median(c["fwd_bwd"]["median_ms"] / c["fwd"]["median_ms"] for c in per_round)
            rows.append(row)
    tmp = args.out.with_name(args.out.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, args.out)
    for row in rows:
        print(", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return rows


if __name__ == "__main__":
    main()
