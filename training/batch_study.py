"""What a bigger batch buys a generator on mnist5k, up to the whole training set in one exact step.

    python -m training.batch_study                          # every cell, 3 seeds (hours of CPU: see --reuse)
    python -m training.batch_study --parts a --batches 256 --gammas fixed --seeds 0     # one cell
    python -m training.batch_study --table-only             # table and plots from the raw results

Cells (each for every seed, all at the same number of optimiser steps):
  a  CW-Generator (training.generator --loss cw) at batch 64, 256, 1024 and 4000 (the whole training
     split: every step is the exact full-data CW distance), once with gamma fixed at one value for every
     batch (Silverman at batch 256 from the training pixels' std: the authors' MNIST value) and once
     with gamma from Silverman's rule per batch (it shrinks as the batch grows);
  b  CW² stage 1 (training.train) at batch 128, 1024 and 4000, each followed by its Latent Trick with the
     default settings: LCW's FID against the stage-1 batch;
  c  SW-Generator (--loss sw, 5,000 directions) at batch 256 and 4000.
Generators of a and c, and stage 1 of b, are trained in segments of --fid-every steps (b: whole epochs;
exact resume), each followed by its domain FID and KID (--fid-n generated images, LeNet features, against
the 4,000 training digits), so every cell has an FID curve against steps and training seconds; b's LCW
(stage 1's Latent Trick) is scored at the end.
BatchNorm: every network here normalises over its whole batch (no chunking, one process).
Each finished cell writes RESULTS/raw/<cell>.json (settings, curve, final scores, wall time, the command
that reproduces it); --reuse skips cells whose raw result exists and continues an interrupted cell from
its last segment. A session's machine is not always kept: --park keeps an unfinished cell's resume
state in RESULTS/parked/<cell>/ after each scored segment (commit it), and --reuse on another machine
continues from it where its run folder is missing or behind; a finished cell deletes its parked copy.
Then RESULTS/table.md (mean ± std over seeds, seconds per step), results.json,
fid_vs_batch.png and fid_vs_steps.png (against steps and against training seconds) are rebuilt from all
raw results. A finished cell also keeps 64 samples of its generator (noise seed 0) in
RESULTS/samples/<cell>.png and a memorisation check in its raw result (1,000 more samples' distance to
their nearest training digit against the held-out digits'), so its picture outlives its run folder.
--grids draws best_samples.png from them: the lowest-FID cell with kept samples of each model, side by
side, each titled with its cell and FID; it names every lower-FID cell it passed over.
Times are marked in the table and plots where a cell did not run on one CPU thread: "(cuda)", or "(2 threads,
<CPU model>)" (each raw result records its device, threads and CPU); the batch-4,000 cells
on the device machine: `bash benchmarks/gpu_check.sh --steps build,study` (benchmarks/gpu_check/study.py).
"""
import argparse
import functools
import itertools
import json
import shutil
import statistics
import textwrap
import time
from pathlib import Path
from typing import List, Optional

import torch

import lcw_fast

from . import data as datasets
from . import plots as pictures
from .cli import Parser
from .compare import mean_std
from .evaluate import fid_kid
from .generator import GeneratorConfig, train_generator
from .latent import LatentConfig, train_latent
from .runs import Run, atomic_text, atomic_write, cpu_model
from .sample import generator
from .train import AutoencoderConfig, train_autoencoder

PARTS = {"a": ("cwg", (64, 256, 1024, 4000), ("fixed", "silverman")), "b": ("lcw", (128, 1024, 4000), ("auto",)),
         "c": ("swg", (256, 4000), ("-",))}
NAMES = {"cwg": "CW-Generator", "lcw": "LCW (CW² + LT)", "swg": "SW-Generator"}
GENERATOR_RUN = {"cwg": "", "lcw": "latent", "swg": ""}  # the generator's run folder inside a cell's run
SAMPLES = 64  # samples (noise seed 0) kept of each finished cell, an 8 x 8 grid
FIXED_GAMMA_BATCH = 256
# what continues a cell on another machine: its stage's config, metrics and last checkpoint, and its curve
# (copied in this order, so a curve is never newer than the checkpoint it continues from); best.pt is left
# out (the study scores last.pt; a continued run writes best.pt again at its next best validation)
PARKED = ("config.json", "metrics.jsonl", "last.pt", "curve.json")


def cell_name(model: str, batch: int, gamma: str, seed: int) -> str:
    return f"{model}-b{batch}" + (f"-{gamma}" if gamma not in ("auto", "-") else "") + f"-seed{seed}"


def command(args, part: str, batch: int, gamma: str, seed: int) -> str:
    """The command line that trains and scores this one cell."""
    return (f"python -m training.batch_study --parts {part} --batches {batch} --gammas {gamma} --seeds {seed} "
            f"--steps {args.steps} --fid-every {args.fid_every} --fid-n {args.fid_n} --out {args.out} "
            + (f"--lt-epochs {args.lt_epochs} " if args.lt_epochs else "")
            + (f"--device {args.device} " if args.device != "cpu" else "")
            + (f"--threads {args.threads} " if args.threads != 1 else "") +
            f"--results {args.results} --reuse")


def fixed_gamma() -> float:
    return lcw_fast.silverman_gamma(datasets.pixel_std(datasets.load("mnist5k")), FIXED_GAMMA_BATCH)


def _score(run: Run, n: int) -> dict:
    record = fid_kid(run, "domain", n, True, torch.device("cpu"), kid_subsets=10)
    return {"step": record["step"], "fid": record["fid_domain"], "kid": record["kid_domain"],
            "features": record["features"]}


def copy_state(source: Path, target: Path) -> None:
    """Copies the PARKED files of a cell's run folder from `source` to `target`, each atomically."""
    for name in PARKED:
        atomic_write(target / name, lambda tmp: shutil.copyfile(source / name, tmp))


def restore(path: Path, parked: Path) -> bool:
    """Continues the run folder `path` from its parked copy where that is further on (or `path` holds no
    checkpoint); an unscored segment's trained.json and a best.pt of the older state go. True if it did."""
    if not (parked / "last.pt").exists() or (
            (path / "last.pt").exists() and Run(path).step() >= Run(parked).step()):
        return False
    for stale in ("trained.json", "best.pt"):
        (path / stale).unlink(missing_ok=True)
    copy_state(parked, path)
    return True


def scored_segments(path: Path, units: int, every: int, per_unit: int, train, fid_n: int, here: dict,
                    park: Optional[Path] = None) -> List[dict]:
    """Trains the run in `path` to `units` (steps, or epochs of `per_unit` steps) in segments of `every`
    units, each followed by its domain FID / KID; train(target, first) trains to `target` units (a fresh
    run when `first`, else resuming exactly) and returns the stage's summary. Continues after the last
    scored segment of an interrupted run, whose curve is kept in curve.json beside it (a segment trained
    but not scored is scored, its training seconds kept in trained.json); with `park`, copies the run's
    resume state there after each scored segment but the last (copy_state). Returns the curve:
    step, fid, kid, features, train_seconds (cumulative), heldout_metric and trained_on (`here`, the
    machine this process trains on: a parked cell continues elsewhere), one point per segment."""
    curve_file, trained_file = path / "curve.json", path / "trained.json"
    curve = json.loads(curve_file.read_text()) if curve_file.exists() and (path / "last.pt").exists() else []
    done = curve[-1]["step"] // per_unit if curve else 0
    seconds = curve[-1]["train_seconds"] if curve else 0.0
    while done < units:
        target = min(done + every, units)
        # trained.json: a segment trained but not yet scored (an interruption in between keeps its seconds)
        trained = json.loads(trained_file.read_text()) if trained_file.exists() else None
        if (trained and (path / "last.pt").exists() and trained["step"] == target * per_unit == Run(path).step()
                and trained["after"] == seconds):
            seconds, metric = trained["train_seconds"], trained["heldout_metric"]
        else:
            start = time.perf_counter()
            metric = train(target, done == 0)["heldout_metric"]
            previous, seconds = seconds, seconds + time.perf_counter() - start
            atomic_text(trained_file, json.dumps({"step": target * per_unit, "after": previous,
                                                  "train_seconds": seconds, "heldout_metric": metric}) + "\n")
        curve.append({**_score(Run(path), fid_n), "train_seconds": seconds, "heldout_metric": metric,
                      "trained_on": here})
        atomic_text(curve_file, json.dumps(curve, indent=1) + "\n")
        trained_file.unlink()
        done = target
        if park and done < units:
            copy_state(path, park)
        print(f"  {path.name}: step {done * per_unit}/{units * per_unit}, FID {curve[-1]['fid']:.2f}, "
              f"{seconds:.0f} s of training", flush=True)
    return curve


def train_curve(path: Path, args, model: str, batch: int, gamma: str, seed: int, park: Optional[Path]) -> dict:
    """Part a / c: the generator in scored segments of args.fid_every steps."""
    settings = dict(loss=model[:2], batch_size=batch, seed=seed, out=str(path), device=args.device,
                    threads=args.threads,
                    progress=False, stage_end_fid=0, eval_every=args.fid_every, ckpt_every=args.fid_every,
                    gamma={"fixed": repr(fixed_gamma()), "silverman": "silverman", "-": "auto"}[gamma])
    curve = scored_segments(path, args.steps, args.fid_every, 1, lambda target, first: train_generator(
        GeneratorConfig(steps=target, resume=not first, overwrite=first, **settings)), args.fid_n, machine(args),
        park)
    seconds = curve[-1]["train_seconds"]
    return {"curve": curve, "fid": curve[-1]["fid"], "kid": curve[-1]["kid"], "features": curve[-1]["features"],
            "train_seconds": seconds, "seconds_per_step": seconds / args.steps,
            "gamma_value": Run(path).config()["gamma_value"]}


def train_lcw(path: Path, args, batch: int, seed: int, park: Optional[Path]) -> dict:
    """Part b: CW² stage 1 at `batch` for about args.steps steps (whole epochs) in scored segments of about
    args.fid_every steps, then its Latent Trick (restarted if it was interrupted), scored at the end."""
    per_epoch = 4000 // batch
    epochs = max(1, round(args.steps / per_epoch))
    common = dict(device=args.device, threads=args.threads, progress=False, stage_end_fid=0, seed=seed)
    every = max(1, round(args.fid_every / per_epoch))  # epochs a segment; checkpoints only at its end
    stage1 = scored_segments(path, epochs, every, per_epoch, lambda target, first: train_autoencoder(AutoencoderConfig(
        data="mnist5k", objective="cw2", batch_size=batch, epochs=target, out=str(path), resume=not first,
        overwrite=first, ckpt_every=every * per_epoch, **common)), args.fid_n, machine(args), park)
    start = time.perf_counter()
    second = train_latent(LatentConfig(ae=str(path), epochs=args.lt_epochs, overwrite=True, **common))
    stage1_seconds = stage1[-1]["train_seconds"]
    seconds = stage1_seconds + time.perf_counter() - start
    lcw = _score(Run(path / "latent"), args.fid_n)
    return {"stage1_steps": epochs * per_epoch, "stage1_curve": stage1, "stage1_fid": stage1[-1]["fid"],
            "stage1_kid": stage1[-1]["kid"], "fid": lcw["fid"], "kid": lcw["kid"], "features": lcw["features"],
            "train_seconds": seconds, "stage1_seconds": stage1_seconds,
            "seconds_per_step": stage1_seconds / (epochs * per_epoch), "gamma_value": Run(path).config()["gamma_value"],
            "stage1_heldout_metric": stage1[-1]["heldout_metric"], "heldout_metric": second["heldout_metric"]}


def machine(args) -> dict:
    """What this process trains on: device, threads, and the CPU's model on the CPU or the GPU's name."""
    return {"device": args.device, "threads": args.threads,
            "cpu": cpu_model() if args.device == "cpu" else None,
            "gpu": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else None}


def segments(curve: List[dict]) -> List[dict]:
    """The machines a curve's segments were trained on, in order, each with the step it trained to
    (`until_step`); points from before this was recorded hold no machine ({"until_step": step} alone)."""
    return [{**on, "until_step": list(points)[-1]["step"]}
            for on, points in itertools.groupby(curve, key=lambda point: point.get("trained_on", {}))]


def run_cell(args, part: str, batch: int, gamma: str, seed: int) -> dict:
    model = PARTS[part][0]
    name = cell_name(model, batch, gamma, seed)
    raw = Path(args.results) / "raw" / f"{name}.json"
    path, parked = Path(args.out) / name, Path(args.results) / "parked" / name
    if args.reuse and raw.exists():
        shutil.rmtree(parked, ignore_errors=True)  # a parked copy of a cell finished elsewhere (a GPU) is stale
        return json.loads(raw.read_text())
    print(f"{name}: training ({command(args, part, batch, gamma, seed)})", flush=True)
    if args.reuse and restore(path, parked):
        print(f"{name}: continued from {parked} (step {Run(path).step()})", flush=True)
    park = parked if args.park else None
    start = time.perf_counter()
    result = (train_curve(path, args, model, batch, gamma, seed, park) if part != "b"
              else train_lcw(path, args, batch, seed, park))
    result = {"cell": name, "part": part, "model": model, "batch": batch, "gamma": gamma, "seed": seed,
              "steps": args.steps, "fid_n": args.fid_n, **machine(args),
              "trained_on": segments(result["stage1_curve" if part == "b" else "curve"]),
              "wall_seconds": time.perf_counter() - start,
              "command": command(args, part, batch, gamma, seed), "run": str(path), **result}
    result = keep_samples(result, Path(args.results))
    atomic_text(raw, json.dumps(result, indent=1) + "\n")
    shutil.rmtree(parked, ignore_errors=True)
    print(f"{name}: FID {result['fid']:.2f}, {result['seconds_per_step']:.3f} s/step -> {raw}", flush=True)
    return result


def groups(rows: List[dict]) -> dict:
    """(part, model, batch, gamma) -> the rows of its seeds, in table order."""
    found = {}
    for row in sorted(rows, key=lambda r: (r["part"], r["gamma"], r["batch"], r["seed"])):
        found.setdefault((row["part"], row["model"], row["batch"], row["gamma"]), []).append(row)
    return found


def heldout(row: dict) -> Optional[float]:
    """The final generator's CW distance to the held-out digits at the fixed metric gamma (None: not recorded)."""
    return row["curve"][-1].get("heldout_metric") if "curve" in row else row.get("heldout_metric")


def where(row: dict) -> str:
    """What a cell's times were measured on, where that is not one thread of an unrecorded CPU (the cells
    from before the device, threads and CPU were recorded ran on one CPU thread each): 'cuda', or
    'cuda, <GPU model>' (the GPU's name is recorded since 2026-12-04), or '2 threads, <CPU model>'; a cell
    continued on another machine (--park) names each with the step it trained to, its times are their sum."""
    if len(row.get("trained_on", [])) > 1:
        return " then ".join(f"{where(part) if 'device' in part else 'an unrecorded machine'} to step "
                             f"{part['until_step']:,}" for part in row["trained_on"])
    if row.get("device", "cpu") != "cpu":
        return ", ".join(filter(None, (row["device"], row.get("gpu"))))
    threads = row.get("threads", 1)
    return ", ".join(([f"{threads} threads"] if threads != 1 else []) + ([row["cpu"]] if row.get("cpu") else []))


def devices(rows: List[dict]) -> str:
    """' (<where>)' after the times of a group of cells measured elsewhere than on one CPU thread of the
    first cells' machine (`where`), else ''."""
    other = sorted({where(r) for r in rows} - {""})
    return f" ({'; '.join(other)})" if other else ""


def by_where(rows: List[dict]) -> dict:
    """`where` -> the rows measured there: times of different machines are never averaged together."""
    found = {}
    for row in rows:
        found.setdefault(where(row), []).append(row)
    return found


def times(rows: List[dict], key: str, digits: int) -> str:
    """mean ± std of `key` over the cells of each machine, each marked where it is not one CPU thread
    (`where`), machines separated by '; '."""
    return "; ".join(mean_std([r[key] for r in mine], digits) + (f" ({place})" if place else "")
                     for place, mine in by_where(rows).items())


def table(rows: List[dict]) -> str:
    lines = ["| part | model | batch | gamma | seeds | steps | domain FID | domain KID | held-out metric | "
             "stage-1 FID (b) | training s | s / step |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (part, model, batch, gamma), mine in groups(rows).items():
        stage1 = mean_std([r["stage1_fid"] for r in mine], 2) if part == "b" else "–"
        metrics = [m for m in map(heldout, mine) if m is not None]
        metric = mean_std(metrics, 4) + (f" ({len(metrics)} of {len(mine)} seeds)"
                                         if metrics and len(metrics) < len(mine) else "")
        gammas = sorted({f"{r['gamma_value']:.4g}" for r in mine if isinstance(r["gamma_value"], float)
                         and model != "swg"})  # the SW loss has no bandwidth
        lines.append(f"| {part} | {NAMES[model]} | {batch} | {gamma}{' (' + ', '.join(gammas) + ')' if gammas else ''} "
                     f"| {len(mine)} | {mine[0]['steps']} | {mean_std([r['fid'] for r in mine], 2)} | "
                     f"{mean_std([r['kid'] for r in mine], 3)} | {metric} | {stage1} | "
                     f"{times(mine, 'train_seconds', 0)} | {times(mine, 'seconds_per_step', 3)} |")
    networks = {}  # the LeNet behind each cell's scores: cells scored with different ones do not compare exactly
    for row in rows:
        networks.setdefault(row.get("features", "not recorded"), []).append(row["cell"])
    lines += ["", "FID / KID features: " + ("; ".join(f"{name}: {', '.join(cells)}" for name, cells in networks.items())
                                            if len(networks) > 1 else f"{next(iter(networks))}, every cell") + "."]
    return "\n".join(lines) + "\n"


def plain_log_labels(*axes) -> None:
    """Log axes (their data plotted) ticked and labelled 1, 2, 5, 10, 20, 50, ... rather than 2x10^1 at every
    minor tick (which overlap); 1, 3, 10, 30, ... where they span more than three decades."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    for axis in axes:
        low, high = axis.get_view_interval()
        axis.set_major_locator(LogLocator(subs=(1, 2, 5) if high < 1000 * low else (1, 3)))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())


def seed_count(n: int) -> str:
    return f"{n} seed{'s' if n > 1 else ''}"


def plots(rows: List[dict], folder: Path) -> None:
    """fid_vs_batch.png: final FID against the batch (mean ± std over seeds); fid_vs_steps.png: the curves
    of parts a and c, and of b's stage 1 (dashed), against steps and against training seconds (mean over
    seeds); a point or curve over fewer seeds than the fullest group says how many."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = groups(rows)
    series, seeds = {}, max(len(mine) for mine in grouped.values())
    for (part, model, batch, gamma), mine in grouped.items():
        series.setdefault((model, gamma), []).append((batch, [r["fid"] for r in mine]))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (model, gamma), points in series.items():
        batches = [b for b, _ in points]
        means = [statistics.mean(v) for _, v in points]
        ax.errorbar(batches, means, yerr=[statistics.stdev(v) if len(v) > 1 else 0 for _, v in points], marker="o",
                    capsize=3, label=NAMES[model] + (f", gamma {gamma}" if gamma not in ("auto", "-") else ""))
        for batch, mean, (_, values) in zip(batches, means, points):
            if len(values) < seeds:  # a point over fewer seeds than the others: no error bar, or a narrower one
                ax.annotate(seed_count(len(values)), (batch, mean),
                            textcoords="offset points", xytext=(-6, 7), ha="right", fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="batch size (images per step; 4000 = the whole training split)",
           ylabel="domain FID (lower is better)", title="mnist5k: final domain FID against the batch size")
    plain_log_labels(ax.yaxis)
    ax.set_xticks(sorted({b for points in series.values() for b, _ in points}), minor=False)
    ax.xaxis.set_major_formatter("{x:.0f}")
    ax.xaxis.set_minor_formatter("")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "fid_vs_batch.png", dpi=120)
    plt.close(fig)

    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 7.0), sharey=True)
    by_step.set_prop_cycle(color=plt.cm.tab20.colors)  # more curves than the default cycle's 10 colours
    split = []  # right-panel curves of groups measured on more than one machine: their own legend entries
    for (part, model, batch, gamma), mine in grouped.items():
        key = "stage1_curve" if part == "b" else "curve"
        curves = [r[key] for r in mine if key in r]
        if not curves:  # part b cells from before stage 1 was scored in segments
            continue
        length = min(len(c) for c in curves)
        name = (f"CW² stage 1 (of LCW) b{batch}" if part == "b" else
                f"{NAMES[model]} b{batch}" + (f" {gamma}" if gamma not in ("auto", "-") else ""))
        label = name
        if len(curves) < len(mine):
            label += f", {len(curves)} of {len(mine)} seeds"
        elif len(mine) < seeds:
            label += f", {seed_count(len(mine))}"
        style = dict(marker=".", linestyle="--" if part == "b" else "-")
        line, = by_step.plot([curves[0][i]["step"] for i in range(length)],
                             [statistics.mean(c[i]["fid"] for c in curves) for i in range(length)],
                             label=label + devices(mine), **style)
        places = by_where([r for r in mine if key in r])
        for place, here in places.items():  # one time axis per machine
            fid = [statistics.mean(r[key][i]["fid"] for r in here) for i in range(length)]
            curve, = by_time.plot([statistics.mean(r[key][i]["train_seconds"] for r in here) for i in range(length)],
                                  fid, color=line.get_color(), label=f"{name}, {seed_count(len(here))} ({place or 'one CPU thread'}; right panel)",
                                  **style)
            if len(places) > 1:
                split.append(curve)
    by_step.set(xlabel="optimiser steps", ylabel="domain FID (mean over seeds)", yscale="log",
                title="FID against steps")
    by_time.set(xlabel="training seconds (one CPU thread unless marked)", xscale="log",
                title="FID against training time")
    plain_log_labels(by_step.yaxis, by_time.xaxis)
    handles = by_step.get_lines() + split  # below both panels: the curves cover every corner of them
    # a cell trained on several machines names them all: wrap to half the figure's width
    labels = [textwrap.fill(line.get_label(), 88, subsequent_indent="  ") for line in handles]
    half = -(-len(labels) // 2)  # the legend fills its first column first
    rows = max(sum(label.count("\n") + 1 for label in column) for column in (labels[:half], labels[half:]))
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=2)
    fig.tight_layout(rect=(0, 0.03 + 0.024 * rows, 1, 1))
    fig.savefig(folder / "fid_vs_steps.png", dpi=120)
    plt.close(fig)


@torch.no_grad()
def nearest_training_distance(images: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """(n,) Euclidean pixel distance of each of `images` (n, C, H, W) to its nearest image of `train`."""
    reference = train.flatten(1).double()
    return torch.cat([torch.cdist(chunk, reference).min(1).values for chunk in images.flatten(1).double().split(500)])


def copying(images: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor) -> str:
    """A memorisation check: how close `images` lie to their nearest digit of `train`, against the held-out
    digits (which the generator never saw) to theirs, `heldout` (k,) = nearest_training_distance(held-out
    digits, train). A generator that copies its training digits sits well below the held-out digits; one
    that does not sits at or above them."""
    mine = nearest_training_distance(images, train)
    floor = torch.quantile(heldout, 0.01)
    return (f"nearest training digit at median distance {mine.median():.2f} ({len(mine):,} samples) against "
            f"{heldout.median():.2f} for the {len(heldout):,} held-out digits "
            f"({mine.median() / heldout.median():.2f}x); "
            f"{(mine < floor).double().mean():.1%} of the samples closer than the closest 1% of held-out digits")


@functools.lru_cache(maxsize=1)
def memorisation_reference() -> tuple:
    """(mnist5k's training digits, nearest_training_distance of its held-out digits): what `copying` compares
    every cell's samples with, loaded once a process (about a second)."""
    data = datasets.load("mnist5k")
    return data.train, nearest_training_distance(data.heldout, data.train)


def samples_path(results: Path, cell: str) -> Path:
    """RESULTS/samples/<cell>.png: the kept samples of a finished cell (a bare grid, see keep_samples)."""
    return results / "samples" / f"{cell}.png"


@torch.no_grad()
def keep_samples(row: dict, results: Path, checked: int = 1000) -> dict:
    """Writes samples_path(...): SAMPLES samples (noise seed 0) of a finished cell's generator (its run folder
    `row["run"]`, or run/latent for LCW), a bare 8-bit grid that best_samples redraws exactly once the run
    folder is gone; returns `row` with "copying", the memorisation check (`copying`) of `checked` more
    samples (noise seed 1)."""
    dim, generate = generator(Run(Path(row["run"]) / GENERATOR_RUN[row["model"]]), torch.device("cpu"))
    path = samples_path(results, row["cell"])
    atomic_write(path, lambda tmp: pictures.grid(generate(torch.randn(SAMPLES, dim, generator=torch.Generator()
                                                                      .manual_seed(0))), tmp))
    more = generate(torch.randn(checked, dim, generator=torch.Generator().manual_seed(1)))
    return {**row, "copying": copying(more, *memorisation_reference())}


def backfill_samples(rows: List[dict], results: Path) -> List[str]:
    """keep_samples for every finished cell whose samples are not kept but whose generator is here (a cell
    finished before samples were kept), its check written into its raw result; returns those cells."""
    done = []
    for row in rows:
        if not samples_path(results, row["cell"]).exists() and \
                (Path(row["run"]) / GENERATOR_RUN[row["model"]] / "last.pt").exists():
            row.update(keep_samples(row, results))
            atomic_text(results / "raw" / f"{row['cell']}.json", json.dumps(row, indent=1) + "\n")
            done.append(row["cell"])
    return done


def best_samples(rows: List[dict], results: Path) -> str:
    """Writes RESULTS/best_samples.png: the kept samples (keep_samples) of each model's lowest-FID cell that
    has them, side by side, each titled with its cell and FID; returns what it drew, each drawn cell's
    memorisation check, and every lower-FID cell it passed over (samples never kept, generator gone)."""
    panels, drawn, lines = [], [], []
    for model, name in NAMES.items():
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["fid"])
        kept = [r for r in mine if samples_path(results, r["cell"]).exists()]
        if mine and not kept:
            lines.append(f"  {name}: not drawn, no cell's samples kept")
        if not kept:
            continue
        row = kept[0]
        gamma = "" if row["gamma"] in ("auto", "-") else f", gamma {row['gamma']}"
        panels.append((pictures.read_grid(samples_path(results, row["cell"]), SAMPLES, 28),
                       f"{name}, batch {row['batch']}{gamma}, seed {row['seed']}, {row['steps']} steps: "
                       f"domain FID {row['fid']:.2f}"))
        drawn.append(row["cell"])
        lines.append(f"  {row['cell']}: {row.get('copying', 'memorisation check not recorded')}")
        lines += [f"  passed over {r['cell']} (FID {r['fid']:.2f}): its samples were not kept"
                  for r in mine[:mine.index(row)]]
    path = results / "best_samples.png"
    if not panels:
        return f"{path}: not drawn, no finished cell's samples kept"
    atomic_write(path, lambda tmp: pictures.side_by_side(panels, tmp))
    return "\n".join([f"{path}: {', '.join(drawn)}"] + lines)


def raw_rows(results: Path) -> List[dict]:
    """Every finished cell's raw result in RESULTS/raw."""
    return [json.loads(p.read_text()) for p in sorted((results / "raw").glob("*.json"))]


def rebuild(rows: List[dict], results: Path) -> str:
    """table.md, results.json and the plots in RESULTS from `rows`, every raw result in RESULTS/raw.
    results.json holds the rows only: each carries its settings and command, and what the last invocation
    selected says nothing about them (so a --table-only check leaves it unchanged)."""
    if not rows:
        return "no raw results yet"
    text = table(rows)
    atomic_text(results / "table.md", text)
    atomic_text(results / "results.json", json.dumps({"rows": rows}, indent=1) + "\n")
    plots(rows, results)
    return text


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """The command line of `main` (also what benchmarks.gpu_check's study step builds its cells from)."""
    parser = Parser(prog="python -m training.batch_study", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS),
                        help="which cells (default: all)")
    parser.add_argument("--batches", nargs="+", type=int, help="only these batch sizes (default: each part's)")
    parser.add_argument("--gammas", nargs="+", help="part a only these: fixed, silverman (default: both)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    parser.add_argument("--steps", type=int, default=10000,
                        help="optimiser steps of every cell (default: 10000: the batch-256 pilot was still "
                             "improving at 5,000, FID 7.8 -> 7.2 over its last 500 steps)")
    parser.add_argument("--fid-every", type=int, default=500,
                        help="steps between FID scores (part b: rounded to whole stage-1 epochs; default: 500)")
    parser.add_argument("--fid-n", type=int, default=5000, help="generated images per FID / KID (default: 5000)")
    parser.add_argument("--lt-epochs", type=int, default=None,
                        help="part b: Latent Trick epochs (default: training.defaults, 100 for mnist5k)")
    parser.add_argument("--out", default="runs/batch-study",
                        help="parent folder of the runs (default: runs/batch-study)")
    parser.add_argument("--results", default="docs/batch-study",
                        help="folder of raw/, table.md, results.json and the plots (default: docs/batch-study)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run (default: 1)")
    parser.add_argument("--reuse", action="store_true", help="skip cells whose raw result exists; continue an "
                        "interrupted cell from its last scored segment, in its run folder or in RESULTS/parked/<cell>/ "
                        "(--park), whichever is further on")
    parser.add_argument("--park", action="store_true",
                        help="after each scored segment, copy an unfinished cell's resume state (config, metrics, "
                             "last.pt, curve) into RESULTS/parked/<cell>/: commit it, and --reuse continues the cell "
                             "from there on another machine or in a fresh clone (deleted when the cell finishes)")
    parser.add_argument("--table-only", action="store_true", help="train nothing: rebuild the table and plots")
    parser.add_argument("--grids", action="store_true",
                        help="also draw RESULTS/best_samples.png: the kept samples (RESULTS/samples/) of each "
                             "model's lowest-FID cell that has them, side by side, and print their memorisation "
                             "check; first keeps the samples of finished cells that lack them and whose run "
                             "folder is in OUT")
    args = parser.parse_args(argv)
    for name in ("steps", "fid_every", "fid_n", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def cells(args: argparse.Namespace) -> List[tuple]:
    """(part, batch, gamma, seed) of every cell the arguments select, in table order."""
    return [(part, batch, gamma, seed) for part in args.parts for gamma in PARTS[part][2]
            if part != "a" or not args.gammas or gamma in args.gammas
            for batch in PARTS[part][1] if not args.batches or batch in args.batches for seed in args.seeds]


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    results = Path(args.results)
    if not args.table_only:
        start = time.perf_counter()
        selected = cells(args)
        for i, cell in enumerate(selected):
            print(f"[{i + 1}/{len(selected)}] {time.perf_counter() - start:.0f} s so far", flush=True)
            run_cell(args, *cell)
    rows = raw_rows(results)
    print(rebuild(rows, results))
    if args.grids:
        print(f"samples kept now: {', '.join(backfill_samples(rows, results)) or 'none'}")
        print(best_samples(rows, results))


if __name__ == "__main__":
    main()
