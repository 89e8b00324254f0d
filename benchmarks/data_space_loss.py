"""Speed and memory of the data-space losses of one generator step: forward + backward of the loss alone.

    python -m benchmarks.data_space_loss                       # batch 4,000, D = 784 (mnist5k), P = 5,000
    python -m benchmarks.data_space_loss --batch 1000 --repeats 3 --threads 1

The workload of a CW-Generator step on the whole mnist5k training set: generated images G(z) and
real images x, both (B, D), the loss and its gradient with respect to G(z). Each cell runs in a
fresh subprocess (a clean resident-set baseline) and is timed by benchmarks.timing.measure:
  cw  auto    lcw_fast.cw_distance(G(z), x, gamma), the fused kernels: memory O(B D)
  cw  paper   the paper's code path: three dense cdist(..)**2 matrices (lcw_fast.reference, exact=False)
  sw  ours    training.sliced.sliced_wasserstein, P directions 512 at a time: memory O(B (D + 512))
  sw  paper   the authors' form: projections (B, P) of both samples, sorted, autograd through the sort
gamma: Silverman at batch B from the mnist5k pixel std 0.3092 (what `--gamma auto` gives the generator
stage). Memory: growth of the sampled resident set over the calls (extra_bytes). Results: CSV and JSON
in benchmarks/results/<machine>/ (machine, threads, commit), one row per cell, with the ratios of each
`paper` cell to the other implementation of its loss measured in the same run.
"""
import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import torch

from .run import ROOT, device_name, git_commit, slug
from .timing import measure

MNIST5K_PIXEL_STD = 0.3092
CELLS = (("cw", "auto"), ("cw", "paper"), ("sw", "ours"), ("sw", "paper"))
FIELDS = ("loss", "implementation", "batch", "dim", "projections", "threads", "median_ms", "min_ms", "max_ms",
          "repeats", "extra_bytes", "peak_bytes", "value", "paper_over_this_time", "paper_over_this_memory")


def loss_fn(loss: str, implementation: str, batch: int, projections: int):
    """The cell's loss as a function of (generated, real) -> 0-dim tensor."""
    import lcw_fast
    from lcw_fast import reference
    from training.sliced import directions, sliced_wasserstein

    gamma = lcw_fast.silverman_gamma(MNIST5K_PIXEL_STD, batch)
    if loss == "cw":
        if implementation == "auto":
            return lambda g, x: lcw_fast.cw_distance(g, x, gamma)
        return lambda g, x: reference.cw_distance(g, x, gamma, exact=False)
    if implementation == "ours":
        return lambda g, x: sliced_wasserstein(g, x, projections, generator=torch.Generator().manual_seed(0))

    def authors(g, x):
        t = directions(projections, g.shape[1], torch.Generator().manual_seed(0), g.dtype)
        return (torch.sort(g @ t.T, dim=0)[0] - torch.sort(x @ t.T, dim=0)[0]).square().mean()

    return authors


def run_cell(loss: str, implementation: str, batch: int, dim: int, projections: int, repeats: int) -> dict:
    """One cell, in this process: median / min / max ms and memory of forward + backward."""
    g = torch.Generator().manual_seed(1)
    generated = torch.rand(batch, dim, generator=g).requires_grad_()
    real = torch.rand(batch, dim, generator=g)
    fn = loss_fn(loss, implementation, batch, projections)
    values = []

    def step():
        generated.grad = None
        value = fn(generated, real)
        value.backward()
        values.append(value.item())

    result = measure(step, torch.device("cpu"), repeats=repeats, warmup=1)
    return {"loss": loss, "implementation": implementation, "batch": batch, "dim": dim, "projections": projections,
            "threads": torch.get_num_threads(), **{k: result.stats[k] for k in ("median_ms", "min_ms", "max_ms")},
            "repeats": len(result.times_ms), "extra_bytes": result.extra_bytes, "peak_bytes": result.peak_bytes,
            "value": values[-1]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.data_space_loss", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=4000, help="generated and real images per step (default: 4000, "
                                                           "the whole mnist5k training split)")
    p.add_argument("--dim", type=int, default=784, help="pixels per image (default: 784, 28x28)")
    p.add_argument("--projections", type=int, default=5000, help="SW directions (default: 5000, as the authors)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per cell after one warm-up (default: 5)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=None, help="folder for the CSV and JSON (default: "
                                                          "benchmarks/results/<machine>)")
    p.add_argument("--cell", nargs=2, metavar=("LOSS", "IMPLEMENTATION"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("batch", "dim", "projections", "repeats", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be >= 1, got {value}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cell:  # a child: one cell, its row as JSON on the last line of stdout
        print(json.dumps(run_cell(*args.cell, args.batch, args.dim, args.projections, args.repeats)))
        return 0

    machine = device_name(torch.device("cpu"))
    out = args.out or ROOT / "benchmarks" / "results" / slug(machine.split(" (CPU")[0] + f" cpu {torch.get_num_threads()} thread")
    rows = []
    for loss, implementation in CELLS:
        cmd = [sys.executable, "-m", "benchmarks.data_space_loss", "--cell", loss, implementation,
               "--batch", str(args.batch), "--dim", str(args.dim), "--projections", str(args.projections),
               "--repeats", str(args.repeats), "--threads", str(torch.get_num_threads())]
        got = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if got.returncode != 0:
            raise SystemExit(f"cell {loss} {implementation} failed:\n{got.stderr[-2000:]}")
        row = json.loads(got.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{loss} {implementation:6s} B={args.batch} D={args.dim}: median {row['median_ms']:.0f} ms "
              f"(min {row['min_ms']:.0f}, max {row['max_ms']:.0f}), +{row['extra_bytes'] / 2**20:.0f} MiB, "
              f"value {row['value']:.6g}", flush=True)
    for row in rows:
        paper = next(r for r in rows if r["loss"] == row["loss"] and r["implementation"] == "paper")
        row["paper_over_this_time"] = paper["median_ms"] / row["median_ms"]
        row["paper_over_this_memory"] = paper["extra_bytes"] / max(row["extra_bytes"], 1)
    out.mkdir(parents=True, exist_ok=True)
    commit, dirty = git_commit()
    with open(out / "data_space_loss.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "data_space_loss.json").write_text(json.dumps(
        {"machine": machine, "commit": commit, "dirty": dirty, "settings": vars(args) | {"out": str(out)},
         "rows": rows}, indent=1, default=str) + "\n")
    print(f"wrote {out / 'data_space_loss.csv'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
