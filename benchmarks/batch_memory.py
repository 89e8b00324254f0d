"""Peak memory and images/s of one CelebA training step (conv autoencoder, cw2) against the batch size.

    python -m benchmarks.batch_memory                                   # GPU: full width, budget 80 GB
    python -m benchmarks.batch_memory --device cpu --threads 1 --width 0.125 --batches 256 512 1024

Three code paths, each at every batch size (ascending) in a fresh subprocess:
  paper    the paper's code: the materialising reference loss (dense cdist(..)**2 matrices), no chunking
  fused    lcw_fast's fused loss (backend "auto"), no chunking
  chunked  the fused loss with --chunk-size C (training.loop's two-pass step: activations O(C))
Time (benchmarks.timing.measure): median, min and max of the timed steps (ms; --steps after --warmup);
images/s is the batch over the median step. Memory (the same call): CUDA max_memory_allocated over the
step (`peak`), and its growth above what was allocated before (`extra`); CPU the sampled resident set,
and its growth over the step. An out-of-memory error is recorded as data ("OOM") and ends that path's sweep; so does a peak
above --budget-gb (on CUDA the budget is also imposed with set_per_process_memory_fraction). The
largest batch that fits is printed per path. Results: CSV, JSON (machine, commit, settings), PNG.
"""
import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

import lcw_fast
from training import loop, models
from training.train import autoencoder_stage

from .run import ROOT, device_name, git_commit, pick_device, slug
from .timing import describe_error, is_oom, measure

SHAPE = (3, 64, 64)
MODES = {"paper": ("reference", False), "fused": ("auto", False), "chunked": ("auto", True)}
FIELDS = ("mode", "batch_size", "chunk_size", "width", "status", "peak_bytes", "extra_bytes", "images_per_s",
          "median_ms", "min_ms", "max_ms", "loss", "reason")


def measure_step(mode: str, batch_size: int, chunk_size: int, device: torch.device, width: float = 1.0,
                 latent: int = 128, lam: float = 0.2, amp: bool = False, steps: int = 1, warmup: int = 1) -> dict:
    """Images/s (batch over the median step), the steps' median / min / max / q20 / q80 ms, peak and extra
    memory (bytes) of cw2 Adam steps of the CelebA autoencoder on random images, in this process (run it
    in a fresh one for a clean peak: run_point). mode: one of MODES."""
    backend, chunked = MODES[mode]
    torch.manual_seed(0)
    model = models.Autoencoder(SHAPE, latent, width).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    x = torch.rand(batch_size, *SHAPE, device=device)
    stage = autoencoder_stage(model, "cw2", lam, lcw_fast.silverman_gamma(x.std().item(), batch_size), backend=backend)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=amp and device.type == "cuda")
    losses = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        losses.append(loop.train_step(stage, x, loop.step_generator(0, len(losses)), chunk_size if chunked else None,
                                      autocast))
        optimizer.step()

    result = measure(step, device, repeats=steps, warmup=warmup)
    return {"images_per_s": batch_size / (result.stats["median_ms"] / 1e3), **result.stats,
            "peak_bytes": result.peak_bytes, "extra_bytes": result.extra_bytes, "loss": losses[-1].item()}


def run_point(args: argparse.Namespace, mode: str, batch_size: int) -> dict:
    """One (mode, batch) point in a fresh subprocess; failures become a row with status OOM or error."""
    row = {"mode": mode, "batch_size": batch_size, "chunk_size": args.chunk_size if MODES[mode][1] else "",
           "width": args.width}
    command = [sys.executable, "-m", "benchmarks.batch_memory", "--point", mode, str(batch_size),
               *_forwarded(args)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=args.point_seconds)
    except subprocess.TimeoutExpired:
        return {**row, "status": "timeout", "reason": f"over --point-seconds {args.point_seconds}"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        killed = done.returncode < 0  # the kernel's OOM killer sends SIGKILL
        reason = f"killed by signal {-done.returncode}" if killed else (done.stderr.strip().splitlines() or ["?"])[-1]
        return {**row, "status": "OOM" if killed else "error", "reason": reason[:300]}
    return {**row, **json.loads(lines[-1])}


def _forwarded(args) -> list:
    return ["--device", args.device, "--width", str(args.width), "--chunk-size", str(args.chunk_size),
            "--latent", str(args.latent), "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--budget-gb", str(args.budget_gb), *(["--amp"] if args.amp else []),
            *(["--threads", str(args.threads)] if args.threads else [])]


def _point(args, mode: str, batch_size: int) -> None:
    """The body of one subprocess: prints one JSON line."""
    device = pick_device(args.device)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.budget_gb * 2**30 / total), device)
    try:
        result = {"status": "ok", **measure_step(mode, batch_size, args.chunk_size, device, args.width, args.latent,
                                                 amp=args.amp, steps=args.steps, warmup=args.warmup)}
        if result["peak_bytes"] > args.budget_gb * 2**30:
            result.update(status="over budget", reason=f"peak above --budget-gb {args.budget_gb}")
    except Exception as error:  # noqa: BLE001  (recorded as data)
        if not is_oom(error):
            raise
        result = {"status": "OOM", "reason": describe_error(error)}
    print(json.dumps(result))


def sweep(args, out: Path, machine: str) -> list:
    """Every path at every batch size; the results are rewritten after each point."""
    rows = []
    for mode in args.modes:
        for batch_size in sorted(args.batches):
            row = run_point(args, mode, batch_size)
            rows.append(row)
            print(_describe(row), flush=True)
            write(rows, args, out, machine)
            if row["status"] != "ok":
                break  # larger batches of this path need more memory still
    return rows


def _describe(row: dict) -> str:
    if row["status"] != "ok":
        return f"{row['mode']:8} batch {row['batch_size']:>7}: {row['status']} ({row.get('reason', '')})"
    return (f"{row['mode']:8} batch {row['batch_size']:>7}: peak {row['peak_bytes'] / 2**30:7.3f} GiB, "
            f"step {row['extra_bytes'] / 2**30:7.3f} GiB, {row['images_per_s']:9.1f} images/s")


def largest_batches(rows: list) -> dict:
    """mode -> the largest batch whose step ran within the budget (None if none did)."""
    return {mode: max((r["batch_size"] for r in rows if r["mode"] == mode and r["status"] == "ok"), default=None)
            for mode in dict.fromkeys(r["mode"] for r in rows)}


def plot(rows: list, path: Path, title: str, budget_gb: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (("peak_bytes", "peak memory (GiB)"), ("extra_bytes", "memory of the step (GiB)"),
              ("images_per_s", "images / s"))
    for ax, (key, label) in zip(axes, panels):
        scale = 2**30 if key.endswith("bytes") else 1
        ok = [r for r in rows if r["status"] == "ok" and r[key] > 0]
        if not ok:
            ax.text(0.5, 0.5, "no point within the budget", ha="center", transform=ax.transAxes)
            continue
        for mode in dict.fromkeys(r["mode"] for r in ok):
            points = [r for r in ok if r["mode"] == mode]
            ax.plot([r["batch_size"] for r in points], [r[key] / scale for r in points], marker="o", label=mode)
        if key == "peak_bytes":
            ax.axhline(budget_gb, color="grey", linestyle=":", label=f"budget {budget_gb:g} GiB")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(rows: list, args, out: Path, machine: str) -> list:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path, png_path = (out / f"batch_memory.{ext}" for ext in ("csv", "json", "png"))
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    commit, dirty = git_commit()
    settings = {k: v for k, v in vars(args).items() if k not in ("point", "out")}
    json_path.write_text(json.dumps({"machine": machine, "torch": torch.__version__, "commit": commit, "dirty": dirty,
                                     "settings": settings, "largest_batch": largest_batches(rows), "rows": rows},
                                    indent=2) + "\n")
    plot(rows, png_path, f"CelebA cw2 training step, width {args.width:g}, chunk {args.chunk_size} ({machine})",
         args.budget_gb)
    return [csv_path, json_path, png_path]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.batch_memory", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run")
    p.add_argument("--modes", nargs="+", choices=tuple(MODES), default=list(MODES), help="code paths to measure")
    p.add_argument("--batches", nargs="+", type=int, default=[2**k for k in range(6, 17)],
                   help="batch sizes (each path stops at its first OOM or over-budget point)")
    p.add_argument("--chunk-size", type=int, default=64, help="rows per network pass of the chunked path")
    p.add_argument("--width", type=float, default=1.0, help="factor on the conv channel counts (narrower for CPUs)")
    p.add_argument("--latent", type=int, default=128, help="latent dimension")
    p.add_argument("--budget-gb", type=float, default=80.0, help="memory budget in GiB (the largest batch within it)")
    p.add_argument("--steps", type=int, default=1, help="timed steps per point")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--point-seconds", type=float, default=1800.0, help="time limit of one point's subprocess")
    p.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results/<device-slug>/)")
    p.add_argument("--point", nargs=2, metavar=("MODE", "BATCH"), default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> list:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.point:
        return _point(args, args.point[0], int(args.point[1]))
    machine = device_name(pick_device(args.device))
    out = args.out or ROOT / "benchmarks" / "results" / slug(machine)
    rows = sweep(args, out, machine)
    paths = write(rows, args, out, machine)
    for mode, batch in largest_batches(rows).items():
        print(f"largest batch within {args.budget_gb:g} GiB, {mode}: {batch}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return paths


if __name__ == "__main__":
    main()
