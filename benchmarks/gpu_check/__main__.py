"""python -m benchmarks.gpu_check STEP ... / end STEP ... (see benchmarks/gpu_check.sh)."""
import argparse
import importlib
import os
import sys
from pathlib import Path

MODULES = {"build": "build", "ceilings": "ceilings", "correctness": "correctness", "sanitizer": "sanitizer",
           "benchmarks": "headline", "training": "training_steps", "study": "study",
           "summary": "summary"}


def margin_s(budget_s: float) -> float:
    """What a step keeps back from its budget for start-up and its last rows before the hard timeout."""
    return min(15.0, 0.2 * budget_s)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__)
    p.add_argument("step", choices=tuple(MODULES) + ("end",))
    p.add_argument("ended", nargs="?", choices=MODULES, help="with `end`: the step that ended")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budget", type=float, required=True, help="the step's hard time limit, seconds")
    p.add_argument("--rehearse", action="store_true")
    p.add_argument("--rc", type=int, help="with `end`: the step's exit code")
    p.add_argument("--seconds", type=float, help="with `end`: how long the step ran")
    p.add_argument("--log", type=Path, help="with `end`: the step's log file")
    p.add_argument("--offset", type=int, default=0, help="with `end`: the log's size before the step")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step == "end":
        from . import rows

        row = rows.end_step(args.out, args.ended, args.rc, args.seconds, args.budget, args.log, args.offset)
        print(f"[{args.ended}] {row['status']} in {row['seconds']} s {row['reason']}", flush=True)
        return 0 if row["status"] in ("ok", "skipped") else 3
    if args.step == "correctness":
        os.environ["LCW_FAST_POISON"] = "1"  # before lcw_fast is imported: NaN outputs and scratch before launch
    module = importlib.import_module(f".{MODULES[args.step]}", __package__)
    return module.run(args.out, max(1.0, args.budget - margin_s(args.budget)), args.rehearse)


if __name__ == "__main__":
    sys.exit(main())
