"""The paper's Table 2 comparison on mnist5k: AE, CWAE and CW², each followed by its Latent Trick.

    python -m training.compare [--objectives ae cwae cw2] [--seeds 0 1 2] [--out runs/compare]
                               [--results docs/compare-mnist5k] [--n 10000]

For every (objective, seed): both stages with the default settings (training.defaults) into
OUT/<objective>-seed<seed> and OUT/<objective>-seed<seed>/latent, then for each of the two generators
(D(z) and D(LG(z'))) domain FID and KID (training.evaluate: n generated images against the 4,000
training digits, LeNet features), the held-out kernel metric and the held-out reconstruction error.
Writes RESULTS/table.md (mean ± std over the seeds, beside the paper's MNIST row), RESULTS/results.json
(every value, the settings, the wall time) and one sample grid per model (RESULTS/<model>.png, the
first seed's samples.png). Domain FID is not comparable with the paper's Inception FID; the ordering is.
"""
import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import torch

from .cli import Parser, run_cli
from .demo import two_stages
from .evaluate import fid_kid
from .objectives import STAGE1
from .runs import Run, atomic_text

NAMES = {"ae": ("AE", "AE+LT"), "cwae": ("CWAE", "CWAE+LT"), "cw2": ("CW²", "LCW (CW²+LT)")}
# Table 2 of the paper, MNIST (60,000 images): FID (Inception, 10,000 samples), reconstruction error
PAPER = {"AE": (52, 11), "AE+LT": (22, None), "CWAE": (23, 11), "CWAE+LT": (20, None), "CW²": (17, 14),
         "LCW (CW²+LT)": (14, None)}
COLUMNS = ("fid_domain", "kid_domain", "heldout_metric", "reconstruction_error")


def _trained(path: str):
    """The final summary of a trained stage in `path`, else None."""
    summaries = [r for r in Run(path).metrics() if "heldout_metric" in r]
    return summaries[-1] if summaries else None


def _scored(path: str, n: int, subsets: int):
    """The last domain FID/KID record of n images and `subsets` KID subsets in `path`, else None."""
    scores = [r for r in Run(path).metrics()
              if "kid_domain" in r and r.get("generated") == n and r.get("kid_subsets") == subsets]
    return scores[-1] if scores else None


def measure(out: str, objective: str, seed: int, n: int, subsets: int, device: str, threads: int, reuse: bool,
            finished_only: bool = False) -> list:
    """Trains both stages and scores them; with `reuse` (or `finished_only`) a pair already trained is
    kept and a score already computed with the same n and subsets is read. Returns
    [stage-1 row, stage-2 row], or [] for an untrained pair with `finished_only`."""
    start = time.perf_counter()
    summaries = [_trained(path) for path in (out, f"{out}/latent")] if reuse or finished_only else [None]
    reused = None not in summaries
    if not reused and finished_only:
        print(f"{objective} seed {seed}: not trained in {out}, left out", flush=True)
        return []
    if not reused:
        summaries = two_stages(out, objective, seed, device, threads, progress=False, overwrite=reuse, stage_end_fid=0)
    done = [(summary, (reused and _scored(summary["run"], n, subsets))
             or fid_kid(Run(summary["run"]), "domain", n, True, torch.device("cpu"), kid_subsets=subsets))
            for summary in summaries]
    reconstruction_error = done[0][0]["reconstruction_error"]
    rows = [{"model": name, "objective": objective, "seed": seed, "run": summary["run"],
             "fid_domain": scores["fid_domain"], "kid_domain": scores["kid_domain"],
             "heldout_metric": summary["heldout_metric"],
             "reconstruction_error": reconstruction_error if summary["stage"] == 1 else None,
             "features": scores["features"], "reused": reused, "seconds": time.perf_counter() - start}
            for (summary, scores), name in zip(done, NAMES[objective])]
    print(f"{objective} seed {seed}: " + ", ".join(f"{r['model']} FID {r['fid_domain']:.2f}" for r in rows), flush=True)
    return rows


def mean_std(values: list, digits: int) -> str:
    """'mean ± std' over the values that are not None; one value alone (no spread to show), '–' for none."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(rows: list, seeds: list, n: int, seconds: float) -> str:
    """The Markdown table: mean ± std over seeds per model, the paper's MNIST values beside."""
    models = [m for pair in NAMES.values() for m in pair if any(r["model"] == m for r in rows)]
    timing = ("Trained and scored earlier (--reuse); the wall time is in docs/results.md."
              if any(r["reused"] for r in rows) else f"Wall time {seconds / 60:.0f} min.")
    lines = [f"mnist5k (4,000 training digits), seeds {', '.join(map(str, seeds))}; domain FID / KID: {n:,} "
             f"generated images against the training split, features of {rows[0]['features']}; held-out kernel "
             "metric and reconstruction error (mean per-image sum of squared errors, pixels in [0, 1]) on the "
             f"1,000 held-out digits. {timing} Paper: MNIST (60,000 images), Inception FID.",
             "", "| model | seeds | domain FID | domain KID | held-out kernel metric | reconstruction error | "
             "paper FID | paper rec. error |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        fid, rec = PAPER[model]
        lines.append(f"| {model} | {len(mine)} | {mean_std([r['fid_domain'] for r in mine], 2)} | "
                     f"{mean_std([r['kid_domain'] for r in mine], 3)} | "
                     f"{mean_std([r['heldout_metric'] for r in mine], 5)} | "
                     f"{mean_std([r['reconstruction_error'] for r in mine], 1)} | {fid} | {rec or '–'} |")
    mean = {m: statistics.mean(r["fid_domain"] for r in rows if r["model"] == m) for m in models}
    verdicts = [f"{lt} {'<' if mean[lt] < mean[base] else '>='} {base}" for base, lt in NAMES.values()
                if base in mean and lt in mean]
    best = min(mean, key=mean.get)
    lines += ["", f"Mean domain FID: {'; '.join(verdicts)}; lowest: {best} (the paper: every +LT below its base, "
              "LCW lowest)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    module = "training.compare"
    parser = Parser(prog=f"python -m {module}", description=__doc__.splitlines()[0],
                    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--objectives", nargs="+", default=list(STAGE1), choices=STAGE1, help="first stages")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (one run of both stages each)")
    parser.add_argument("--out", default="runs/compare", help="parent folder of the runs OUT/<objective>-seed<seed>")
    parser.add_argument("--results", default="docs/compare-mnist5k",
                        help="folder of table.md, results.json and the sample grids")
    parser.add_argument("--n", type=int, default=10000, help="generated images per FID / KID (the paper: 10,000)")
    parser.add_argument("--kid-subsets", type=int, default=100,
                        help="KID subsets of <= 1,000 images (clean-fid's default 100; about 0.75 s of CPU each)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, ...")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of PyTorch (the MLPs gain nothing from more)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep runs already trained (and scores already computed with the same --n, --kid-subsets)")
    parser.add_argument("--finished-only", action="store_true", help="as --reuse, but train nothing: leave out "
                                                                    "untrained pairs")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = []
    for objective in args.objectives:
        for seed in args.seeds:
            rows += run_cli(module, measure, f"{args.out}/{objective}-seed{seed}", objective, seed, args.n,
                            args.kid_subsets, args.device, args.threads, args.reuse, args.finished_only)
    seconds = time.perf_counter() - start
    text = table(rows, args.seeds, args.n, seconds)
    grids = {row["objective"] + ("-lt" if row["run"].endswith("latent") else ""): row["run"]
             for row in rows if row["seed"] == args.seeds[0]}
    publish(args.results, text, {"settings": vars(args), "seconds": seconds, "rows": rows}, grids)
    print("\n" + text)


def publish(folder: str, table_text: str, results: dict, grids: dict) -> None:
    """Writes FOLDER/table.md, FOLDER/results.json (`results`) and FOLDER/<name>.png, a copy of the
    samples.png of run folder grids[name]."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_text(folder / "table.md", table_text)
    atomic_text(folder / "results.json", json.dumps(results, indent=2) + "\n")
    for name, run in grids.items():
        shutil.copyfile(Path(run) / "samples.png", folder / f"{name}.png")


if __name__ == "__main__":
    main()
