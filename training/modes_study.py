"""Mode collapse on Stacked MNIST (1,000 modes): AE+LT, CWAE+LT, LCW (CW²+LT), the CW-Generator and the
SW-Generator on stacked-mnist5k, every model with the default settings (training.defaults), a few seeds.

    python -m training.modes_study [--models ae-lt cwae-lt lcw cwg swg] [--seeds 0 1 2] [--out runs/modes]
                                   [--results docs/modes-stacked-mnist5k] [--reuse]
    python -m training.modes_study --seeds 0 --epochs 1 --latent-epochs 1 --generator-steps 5 --n 300 \\
                                   --modes-n 1000 --out /tmp/modes --results /tmp/modes/results   # a smoke run

For every (model, seed): train into OUT/<model>-seed<seed> (the +LT models: stage 1 there, stage 2 in its
latent/), then score the final generator: modes hit (of 1,000) and KL(uniform || generated) of --modes-n
generated images (training.modes) and the domain FID of --n images against the 4,000 stacked training
images (the mnist5k LeNet's features of the three channels concatenated: not comparable with the 28x28
domain FID). Each finished cell writes OUT/<model>-seed<seed>.json; --reuse reads those written with the
same settings instead of training again. Writes RESULTS/table.md (mean ± std over the seeds, the command
and the wall time), RESULTS/results.json (every value, the settings) and RESULTS/<model>.png (the first
seed's sample grid).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .cli import Parser, run_cli
from .compare import mean_std, publish
from .demo import two_stages
from .evaluate import fid_kid
from .generator import GeneratorConfig, train_generator
from .modes import MODES, SAMPLES, modes_record
from .runs import Run, atomic_text

DATA = "stacked-mnist5k"
# model -> (name in the table, stage-1 objective of a +LT model or loss of a data-space generator)
MODELS = {"ae-lt": ("AE+LT", "ae"), "cwae-lt": ("CWAE+LT", "cwae"), "lcw": ("LCW (CW²+LT)", "cw2"),
          "cwg": ("CW-Generator", "cw"), "swg": ("SW-Generator", "sw")}
GENERATORS = ("cwg", "swg")
SETTINGS = ("n", "modes_n", "epochs", "latent_epochs", "generator_steps")  # a cell's result is reused only if equal


def train(model: str, out: str, seed: int, args) -> str:
    """Trains `model` into `out` (replacing what is there); returns the run folder of its final generator."""
    common = dict(seed=seed, device=args.device, threads=args.threads, progress=False, overwrite=True,
                  stage_end_fid=0)
    objective = MODELS[model][1]
    if model in GENERATORS:
        return train_generator(GeneratorConfig(loss=objective, data=DATA, out=out, steps=args.generator_steps,
                                               **common))["run"]
    return two_stages(out, objective, data=DATA, epochs=args.epochs, latent_epochs=args.latent_epochs,
                      **common)[1]["run"]


def cell(model: str, seed: int, args) -> dict:
    """The result of one (model, seed): trained and scored, or read from its JSON with --reuse."""
    out = Path(args.out) / f"{model}-seed{seed}"
    saved, settings = out.with_suffix(".json"), {k: getattr(args, k) for k in SETTINGS}
    if args.reuse and saved.is_file():
        row = json.loads(saved.read_text())
        if row["settings"] == settings:
            print(f"{model} seed {seed}: reused {saved}", flush=True)
            return {**row, "reused": True}
    print(f"{model} seed {seed}: training into {out}", flush=True)
    start = time.perf_counter()
    run = Run(train(model, str(out), seed, args))
    trained = time.perf_counter() - start
    scores = modes_record(run, args.modes_n, torch.device("cpu"))
    fid = fid_kid(run, "domain", args.n, False, torch.device("cpu"))
    summary = [r for r in run.metrics() if "heldout_metric" in r][-1]
    row = {"model": MODELS[model][0], "key": model, "seed": seed, "run": str(run.path), "modes": scores["modes"],
           "modes_kl": scores["modes_kl"], "fid_domain": fid["fid_domain"], "heldout_metric": summary["heldout_metric"],
           "features": fid["features"], "classifier": scores["classifier"], "settings": settings,
           "train_seconds": trained, "seconds": time.perf_counter() - start}
    atomic_text(saved, json.dumps(row, indent=2) + "\n")
    print(f"{model} seed {seed}: {row['modes']} modes, KL {row['modes_kl']:.3f}, domain FID {row['fid_domain']:.2f} "
          f"({row['seconds']:.0f} s)", flush=True)
    return {**row, "reused": False}


def table(rows: list, args, seconds: float, command: str) -> str:
    """The Markdown table: mean ± std over the seeds per model, with the command and the wall time."""
    timing = (f"Wall time {seconds / 60:.0f} min" + (" (some cells reused from an earlier run, --reuse; their own "
                                                     "times are in results.json)" if any(r["reused"] for r in rows)
                                                     else ""))
    lines = [f"stacked-mnist5k (three of the 4,000 mnist5k training digits as R, G, B: {MODES:,} modes), seeds "
             f"{', '.join(map(str, args.seeds))}. Modes hit and KL(uniform || generated) of {args.modes_n:,} generated "
             f"images, each channel classified by {rows[0]['classifier']}; domain FID of {args.n:,} generated "
             f"images against the 4,000 stacked training images, {rows[0]['features']} (not comparable with the "
             f"28x28 domain FID). {timing}.", "", f"    {command}", "",
             "| model | seeds | modes (of 1,000) | KL(uniform ‖ generated) | domain FID | held-out kernel metric |",
             "| --- | --- | --- | --- | --- | --- |"]
    commands = []
    for key, (name, _) in MODELS.items():
        mine = [r for r in rows if r["model"] == name]
        if mine:
            lines.append(f"| {name} | {len(mine)} | {mean_std([r['modes'] for r in mine], 1)} | "
                         f"{mean_std([r['modes_kl'] for r in mine], 3)} | {mean_std([r['fid_domain'] for r in mine], 2)} "
                         f"| {mean_std([r['heldout_metric'] for r in mine], 5)} |")
            commands.append(f"    {model_command(key, sorted({r['seed'] for r in mine}), args)}")
    return "\n".join(lines + ["", "One row alone (its seeds, these settings):", ""] + commands) + "\n"


def model_command(model: str, seeds: list, args) -> str:
    """The command that trains and scores one model's row of the table with the settings of `args`."""
    flags = [f"--{name.replace('_', '-')} {getattr(args, name)}" for name in SETTINGS if getattr(args, name) is not None]
    return (f"python -m training.modes_study --models {model} --seeds {' '.join(map(str, seeds))} {' '.join(flags)} "
            f"--out {args.out} --results {args.results}/{model}")


def main(argv=None) -> None:
    module = "training.modes_study"
    parser = Parser(prog=f"python -m {module}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="models (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    parser.add_argument("--out", default="runs/modes", help="parent folder of the runs (default: runs/modes)")
    parser.add_argument("--results", default="docs/modes-stacked-mnist5k",
                        help="folder of table.md, results.json and the grids (default: docs/modes-stacked-mnist5k)")
    parser.add_argument("--n", type=int, default=10000, help="generated images per domain FID (default: 10000)")
    parser.add_argument("--modes-n", type=int, default=SAMPLES,
                        help=f"generated images per mode count (default: {SAMPLES})")
    parser.add_argument("--epochs", type=int, default=None, help="stage-1 epochs (default: training.defaults, 200)")
    parser.add_argument("--latent-epochs", type=int, default=None,
                        help="stage-2 epochs (default: training.defaults, 100)")
    parser.add_argument("--generator-steps", type=int, default=None,
                        help="data-space generator steps (default: training.generator's, 3000)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, ...")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of PyTorch (default: 1; the MLPs gain nothing from more)")
    parser.add_argument("--reuse", action="store_true", help="read the cells already finished with the same --n, "
                                                             "--modes-n and lengths from OUT/<model>-seed<seed>.json")
    args = parser.parse_args(argv)
    for flag in ("n", "modes_n", "epochs", "latent_epochs", "generator_steps", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be > 0, got {value}")
    start = time.perf_counter()
    rows = [run_cli(module, cell, model, seed, args) for model in args.models for seed in args.seeds]
    seconds = time.perf_counter() - start
    command = " ".join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])
    text = table(rows, args, seconds, command)
    grids = {r["key"]: r["run"] for r in rows if r["seed"] == args.seeds[0]}
    publish(args.results, text, {"command": command, "settings": vars(args), "seconds": seconds, "rows": rows}, grids)
    print("\n" + text)


if __name__ == "__main__":
    main()
