"""Stage 1: train an autoencoder (ae, cwae or cw2) and write its run folder.

    python -m training.train --data mnist5k --objective cw2 --out runs/mnist5k-cw2
    torchrun --nproc_per_node=2 -m training.train ...     # one global batch over 2 processes
    from training.train import AutoencoderConfig, train_autoencoder
"""
import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch

import lcw_fast

from . import data as datasets
from . import defaults, plots
from .cli import NON_NEGATIVE, POSITIVE, RunOptions, config_from_args, field, restore, run_cli
from .errors import ConfigError
from .evaluate import finish_stage, kernel_metric, map_batched, metric_gamma, metric_noise, scored
from .loop import LoopConfig, Stage, batch_norm_rows, fit
from .models import MLP_WIDTH, Autoencoder, mlp_settings
from .objectives import STAGE1, autoencoder_loss, parse_gamma, squared_error
from .runs import Run
from .world import start


@dataclass
class AutoencoderConfig(RunOptions):
    data: str = field("mnist5k", "data set: mnist5k (offline, bundled), stacked-mnist5k (three mnist5k digits as "
                                 "R, G, B), mnist, fmnist, celeba or folder:PATH")
    objective: str = field("cw2", "stage-1 objective", choices=STAGE1)
    out: Optional[str] = field(None, "run folder (default: runs/<data>-<objective>)")
    data_root: str = field("data", "where torchvision data sets are downloaded to / looked for")
    latent: Optional[int] = field(None, "latent dimension (default: training.defaults)", minimum=POSITIVE)
    epochs: Optional[int] = field(None, "passes over the training images (default: training.defaults)",
                                  minimum=POSITIVE)
    batch_size: Optional[int] = field(None, "images per step, over all torchrun processes (default: "
                                            f"{defaults.STAGE1['small']['cw2']['batch_size']} for 28x28 data, "
                                            f"{defaults.STAGE1['celeba']['cw2']['batch_size']} for CelebA)",
                                      minimum=POSITIVE)
    lr: Optional[float] = field(None, "Adam learning rate (default: training.defaults)", minimum=POSITIVE)
    lam: Optional[float] = field(None, "lambda, the weight of log cw_normality(z) (cwae, cw2)",
                                 minimum=NON_NEGATIVE)
    gamma: str = field("auto", "image-space bandwidth of cw2: auto = Silverman (1.06 sigma n^-1/5)^2 from the "
                               "training pixels' std and the batch size; silverman = per batch; or a number")
    batch_norm: bool = field(True, "BatchNorm after each hidden layer of the 28x28 MLPs, as the authors' code "
                                   "(--no-batch-norm: the paper's text; the conv networks always have it)")
    seed: int = field(0, "seed of initialisation and data order (the mnist5k split is fixed)")


def resolve(cfg: AutoencoderConfig, shape) -> AutoencoderConfig:
    """cfg with every None filled in from training.defaults."""
    if cfg.objective not in STAGE1:
        raise ConfigError(f"--objective must be one of {', '.join(STAGE1)}, got {cfg.objective!r}")
    table = defaults.stage1(cfg.data, shape, cfg.objective)
    return dataclasses.replace(cfg, **{k: table[k] for k in table if getattr(cfg, k) is None})


def autoencoder_stage(model: Autoencoder, objective: str, lam: float, gamma, validate=dict, backend: str = "auto",
                      group=None) -> Stage:
    """The training.loop Stage of stage 1: images -> (x_hat, z) -> the objective's loss."""
    return Stage({"autoencoder": model}, model, inputs=lambda x, rng: (x,), forward=model,
                 loss=lambda x, out: autoencoder_loss(objective, x, *out, lam, gamma, backend, group),
                 validate=validate)


def train_autoencoder(cfg: AutoencoderConfig) -> dict:
    """Trains stage 1 as configured; returns the summary (also the last line of metrics.jsonl)."""
    world = start(cfg.device, cfg.threads)
    if cfg.resume:
        if cfg.out is None:
            raise ConfigError("--resume needs --out, the run folder to continue")
        stored = Run(cfg.out).config()  # the folder given wins over the "out" it records (it may have been moved)
        cfg = restore(AutoencoderConfig, stored, out=cfg.out, resume=True, overwrite=False,
                      epochs=cfg.epochs or stored["epochs"],
                      batch_norm=mlp_settings(stored)["batch_norm"],
                      chunk_size=cfg.chunk_size or stored.get("chunk_size"), device=cfg.device, threads=cfg.threads,
                      progress=cfg.progress, stage_end_fid=cfg.stage_end_fid)
    run = Run(cfg.out or f"runs/{cfg.data.replace(':', '-').replace('/', '_')}-{cfg.objective}")
    run.check_start(cfg.resume, cfg.overwrite)
    data = datasets.load(cfg.data, cfg.data_root, workers=cfg.workers).to(world.device)
    cfg = resolve(dataclasses.replace(cfg, out=str(run.path)), data.shape)
    mlp_width = mlp_settings(stored)["mlp_width"] if cfg.resume else MLP_WIDTH
    local_batch = world.local_batch(cfg.batch_size)
    steps = datasets.steps(cfg.epochs, len(data), cfg.batch_size)
    std = datasets.pixel_std(data)
    gamma = parse_gamma(cfg.gamma, lcw_fast.silverman_gamma(std, cfg.batch_size))
    torch.manual_seed(cfg.seed)
    model = Autoencoder(data.shape, cfg.latent, mlp_width=mlp_width, batch_norm=cfg.batch_norm).to(world.device)
    world.barrier()  # every rank has checked the folder before rank 0 writes to it
    if world.writer:
        run.start({**dataclasses.asdict(cfg), "stage": 1, "shape": list(data.shape), "pixel_std": std,
                   "gamma_value": gamma, "mlp_width": mlp_width, "world_size": world.size,
                   "rank_batch_size": local_batch,
                   "batch_norm_rows": batch_norm_rows(model, local_batch, cfg.chunk_size, world.size, cfg.sync_bn)},
                  cfg.resume)

    def validate():
        x_hat, z = model(data.heldout)
        chunks = list(zip(data.heldout.split(cfg.batch_size), x_hat.split(cfg.batch_size),
                          z.split(cfg.batch_size)))
        val = sum(autoencoder_loss(cfg.objective, *c, cfg.lam, gamma).item() for c in chunks) / len(chunks)
        return {"val_loss": val, "reconstruction_error": squared_error(x_hat, data.heldout).item(),
                "latent_normality": lcw_fast.cw_normality(z.float()).item()}

    stage = autoencoder_stage(model, cfg.objective, cfg.lam, gamma, validate, group=world.group)
    loop = LoopConfig.of(cfg, steps)
    final = fit(stage, lambda first: datasets.batches(data, first, cfg.batch_size, cfg.seed, world.device,
                                                      cfg.workers, world.rank, world.size),
                loop, run, world, cfg.resume)
    if not world.writer:
        return final

    gamma_m = metric_gamma(std)
    samples = map_batched(model.decoder, metric_noise(cfg.latent, world.device))
    reconstructions = map_batched(lambda x: model(x)[0], data.heldout)
    summary = finish_stage(run, 1, loop.steps, final, samples, data.heldout, gamma_m,
                           f"stage 1 ({cfg.objective}) on {cfg.data}", cfg.objective,
                           heldout_metric_reconstructions=kernel_metric(reconstructions, data.heldout, gamma_m))
    plots.reconstructions(data.heldout[:32], reconstructions[:32], run.path / "reconstructions.png")
    print(f"stage 1 ({cfg.objective}) done: {run.path}\n  held-out metric D(z), z~N(0,I): "
          f"{summary['heldout_metric']:.5f}   (reconstructions D(E(x)): "
          f"{summary['heldout_metric_reconstructions']:.5f}; gamma {gamma_m:.5f})")
    return summary


def main(argv=None) -> None:
    module = "training.train"
    run_cli(module, scored, train_autoencoder, config_from_args(AutoencoderConfig, module, __doc__, argv))


if __name__ == "__main__":
    main()
