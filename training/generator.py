"""Data-space generators, the paper's baselines: a network G: N(0, I) -> images trained directly on a
distance between a batch of generated and a batch of real images.

  --loss cw   the CW-Generator: cw_distance(G(z), x, gamma) over the (global) batch, with gamma fixed
              (auto: Silverman from the training pixels' std at the batch size, as the authors'
              cwg_fixed) or per batch (silverman, as their cwg_dynamic), or a number.
  --loss sw   the SW-Generator: the sliced Wasserstein distance (training.sliced) with --projections
              fresh random unit directions every step (the authors use 5,000). One process only: the
              sort over the global batch is not distributed, so torchrun is refused.

    python -m training.generator --loss cw --data mnist5k --out runs/mnist5k-cwg
    python -m training.generator --loss cw --batch-size 4000 --chunk-size 500 --out runs/cwg-4000
    torchrun --nproc_per_node=2 -m training.generator --loss cw ...      # one global batch, 2 processes
    from training.generator import GeneratorConfig, train_generator

The network is the authors' (models.DataGenerator): 28x28, 6 x (Linear 512 without bias, BatchNorm,
ReLU) -> Linear -> sigmoid; 3x64x64, 4 such blocks into the CelebA decoder. It trains in the one loop
(training.loop: chunked steps, resume, checkpoints, metrics.jsonl, progress bar), is scored like every
stage at its end (domain FID where the data set has one), and training.sample / training.evaluate take
its run folder (the generator is G itself). Its length is given in steps (a study compares batch sizes
at equal steps); BatchNorm normalises each chunk of --chunk-size rows on each rank unless --sync-bn
(see config.json's batch_norm_rows).
"""
import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch

import lcw_fast

from . import data as datasets
from . import defaults, plots
from .cli import POSITIVE, RunOptions, config_from_args, field, restore, run_cli
from .errors import ConfigError
from .evaluate import finish_stage, map_batched, metric_gamma, metric_noise, scored
from .loop import LoopConfig, Stage, batch_norm_rows, fit
from .models import DataGenerator
from .objectives import generator_loss, parse_gamma
from .runs import Run
from .world import World, start

LOSSES = ("cw", "sw")
VAL_SEED = 7  # the validation loss's SW directions
DEFAULT_STEPS = 3000


@dataclass
class GeneratorConfig(RunOptions):
    loss: str = field("cw", "cw: the CW-Generator (cw_distance(G(z), x)); sw: the SW-Generator (sliced "
                            "Wasserstein)", choices=LOSSES)
    data: str = field("mnist5k", "data set: mnist5k (offline, bundled), stacked-mnist5k (three mnist5k digits as "
                                 "R, G, B), mnist, fmnist, celeba or folder:PATH")
    out: Optional[str] = field(None, "run folder (default: runs/<data>-<loss>g)")
    data_root: str = field("data", "where torchvision data sets are downloaded to / looked for")
    noise: Optional[int] = field(None, "noise dimension of z (default: 8 for 28x28 data, 24 for stacked-mnist5k, "
                                       "32 for CelebA)",
                                 minimum=POSITIVE)
    steps: Optional[int] = field(None, f"optimiser steps, whatever the batch size (a study compares batches at "
                                       f"equal steps; default: {DEFAULT_STEPS})", minimum=POSITIVE)
    batch_size: int = field(256, "generated and real images per step, over all torchrun processes (up to the "
                                 "whole training set; use --chunk-size where memory asks)", minimum=POSITIVE)
    lr: float = field(1e-3, "Adam learning rate", minimum=POSITIVE)
    gamma: str = field("auto", "--loss cw bandwidth: auto = Silverman (1.06 sigma n^-1/5)^2 from the training "
                               "pixels' std and the batch size (fixed for the run); silverman = per batch; or a "
                               "number")
    projections: int = field(5000, "--loss sw: random unit directions per step", minimum=POSITIVE)
    batch_norm: bool = field(True, "BatchNorm in G's linear blocks, as the authors' networks (--no-batch-norm: "
                                   "plain Linear layers with bias)")
    seed: int = field(0, "seed of initialisation, noise, directions and data order")

    def __post_init__(self):
        super().__post_init__()
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")


def generator_stage(model: DataGenerator, loss: str, gamma, projections: int, world: World,
                    validate=dict) -> Stage:
    """The training.loop Stage of a data-space generator: noise z (this rank's rows of the global batch's,
    drawn from the step's generator) -> G(z) -> generator_loss against the step's images. The step's SW
    directions come from a seed drawn from the same generator, so a resumed or chunked step sees the same."""
    directions_seed = {}

    def inputs(images, rng):
        directions_seed["step"] = int(torch.randint(2**62, (1,), generator=rng))
        z = world.shard(torch.randn(len(images) * world.size, model.noise, generator=rng))
        return (z.to(world.device, next(model.parameters()).dtype),)

    def step_loss(images, out):
        directions = torch.Generator(world.device).manual_seed(directions_seed["step"])  # drawn on the device
        return generator_loss(loss, out[0], images, gamma, projections, directions, world.group)

    return Stage({"generator": model}, model, inputs=inputs, forward=lambda z: (model(z),), loss=step_loss,
                 validate=validate)


def default_out(cfg: GeneratorConfig) -> str:
    return f"runs/{cfg.data.replace(':', '-').replace('/', '_')}-{cfg.loss}g"


def train_generator(cfg: GeneratorConfig) -> dict:
    """Trains G as configured; returns the summary (also the last line of metrics.jsonl)."""
    world = start(cfg.device, cfg.threads)
    if cfg.resume:
        if cfg.out is None:
            raise ConfigError("--resume needs --out, the run folder to continue")
        stored = Run(cfg.out).config()  # the folder given wins over the "out" it records (it may have been moved)
        cfg = restore(GeneratorConfig, stored, out=cfg.out, resume=True, overwrite=False,
                      steps=cfg.steps or stored["steps"], chunk_size=cfg.chunk_size or stored.get("chunk_size"),
                      device=cfg.device, threads=cfg.threads, progress=cfg.progress, stage_end_fid=cfg.stage_end_fid)
    if cfg.loss == "sw" and world.size > 1:
        raise ConfigError("--loss sw runs in one process (its sort over the global batch is not distributed); "
                          "run it without torchrun, with --chunk-size for large batches")
    run = Run(cfg.out or default_out(cfg))
    run.check_start(cfg.resume, cfg.overwrite)
    data = datasets.load(cfg.data, cfg.data_root, workers=cfg.workers).to(world.device)
    if cfg.batch_size > len(data):
        raise ConfigError(f"--batch-size {cfg.batch_size} exceeds the {len(data)} training images of {cfg.data}")
    noise_dim = cfg.noise or defaults.noise(cfg.data, data.shape)
    cfg = dataclasses.replace(cfg, out=str(run.path), noise=noise_dim, steps=cfg.steps or DEFAULT_STEPS)
    local_batch = world.local_batch(cfg.batch_size)
    std = datasets.pixel_std(data)
    gamma = parse_gamma(cfg.gamma, lcw_fast.silverman_gamma(std, cfg.batch_size))
    torch.manual_seed(cfg.seed)
    model = DataGenerator(data.shape, cfg.noise, batch_norm=cfg.batch_norm).to(world.device)
    world.barrier()  # every rank has checked the folder before rank 0 writes to it
    if world.writer:
        run.start({**dataclasses.asdict(cfg), "stage": "generator", "shape": list(data.shape), "pixel_std": std,
                   "gamma_value": gamma, "world_size": world.size, "rank_batch_size": local_batch,
                   "batch_norm_rows": batch_norm_rows(model, local_batch, cfg.chunk_size, world.size, cfg.sync_bn)},
                   cfg.resume)
    val_noise = metric_noise(cfg.noise, world.device, len(data.heldout))

    def validate():
        return {"val_loss": generator_loss(cfg.loss, model(val_noise), data.heldout, gamma, cfg.projections,
                                           torch.Generator(world.device).manual_seed(VAL_SEED)).item()}

    stage = generator_stage(model, cfg.loss, gamma, cfg.projections, world, validate)
    loop = LoopConfig.of(cfg, cfg.steps)
    final = fit(stage, lambda first: datasets.batches(data, first, cfg.batch_size, cfg.seed, world.device,
                                                      cfg.workers, world.rank, world.size),
                loop, run, world, cfg.resume)
    if not world.writer:
        return final

    gamma_m = metric_gamma(std)
    samples = map_batched(model, metric_noise(cfg.noise, world.device))
    name = {"cw": "CW-Generator", "sw": "SW-Generator"}[cfg.loss]
    summary = finish_stage(run, "generator", loop.steps, final, samples, data.heldout, gamma_m,
                           f"{name} on {cfg.data}, batch {cfg.batch_size}", f"{cfg.loss}g")
    print(f"{name} done: {run.path}\n  held-out metric D(G(z)): {summary['heldout_metric']:.5f} (gamma {gamma_m:.5f})")
    return summary


def main(argv=None) -> None:
    module = "training.generator"
    run_cli(module, scored, train_generator, config_from_args(GeneratorConfig, module, __doc__, argv))


if __name__ == "__main__":
    main()
