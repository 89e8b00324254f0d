"""Stage 1: train an autoencoder (ae, cwae or cw2) and write its run folder.

    python -m training.train --data mnist5k --objective cw2 --out runs/mnist5k-cw2
    from training.train import AutoencoderConfig, train_autoencoder
"""
import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch

import lcw_fast

from . import data as datasets
from . import defaults, plots
from .cli import NON_NEGATIVE, POSITIVE, ConfigError, RunOptions, config_from_args, field, restore, run_cli
from .evaluate import kernel_metric, map_batched, metric_gamma, metric_noise, scored
from .loop import LoopConfig, Stage, fit
from .models import Autoencoder
from .objectives import LOSS_NAMES, STAGE1, autoencoder_loss, squared_error
from .runs import Run


@dataclass
class AutoencoderConfig(RunOptions):
    data: str = field("mnist5k", "data set: mnist5k (offline, bundled), mnist, fmnist, celeba or folder:PATH")
    objective: str = field("cw2", "stage-1 objective", choices=STAGE1)
    out: Optional[str] = field(None, "run folder (default: runs/<data>-<objective>)")
    data_root: str = field("data", "where torchvision data sets are downloaded to / looked for")
    latent: Optional[int] = field(None, "latent dimension (default: training.defaults)", minimum=POSITIVE)
    epochs: Optional[int] = field(None, "passes over the training images (default: training.defaults)",
                                  minimum=POSITIVE)
    batch_size: Optional[int] = field(None, "images per step (default: 256)", minimum=POSITIVE)
    lr: Optional[float] = field(None, "Adam learning rate (default: training.defaults)", minimum=POSITIVE)
    lam: Optional[float] = field(None, "lambda, the weight of log cw_normality(z) (cwae, cw2)",
                                 minimum=NON_NEGATIVE)
    gamma: str = field("auto", "image-space bandwidth of cw2: auto = Silverman (1.06 sigma n^-1/5)^2 from the "
                               "training pixels' std and the batch size; silverman = per batch; or a number")
    seed: int = field(0, "seed of initialisation and data order (the mnist5k split is fixed)")


def pick_device(name: str, threads: Optional[int] = None) -> torch.device:
    """The torch.device for --device (auto: cuda if available, else cpu); sets the CPU thread count if given."""
    if threads:
        torch.set_num_threads(threads)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def parse_gamma(value: str, auto: float):
    """--gamma: "auto" -> `auto`, "silverman" stays (per batch), else a positive number."""
    if value == "auto":
        return auto
    if value == "silverman":
        return value
    try:
        gamma = float(value)
    except ValueError:
        raise ConfigError(f"--gamma must be auto, silverman or a number, got {value!r}") from None
    if not 0 < gamma < float("inf"):
        raise ConfigError(f"--gamma must be positive and finite, got {value}")
    return gamma


def resolve(cfg: AutoencoderConfig, shape) -> AutoencoderConfig:
    """cfg with every None filled in from training.defaults."""
    if cfg.objective not in STAGE1:
        raise ConfigError(f"--objective must be one of {', '.join(STAGE1)}, got {cfg.objective!r}")
    table = defaults.stage1(cfg.data, shape, cfg.objective)
    filled = {k: table[k] for k in table if getattr(cfg, k) is None}
    out = cfg.out or f"runs/{cfg.data.replace(':', '-').replace('/', '_')}-{cfg.objective}"
    return dataclasses.replace(cfg, out=out, **filled)


def load_data(cfg, device: torch.device) -> datasets.ImageData:
    return datasets.load(cfg.data, cfg.data_root, workers=cfg.workers).to(device)


def load_autoencoder(run: Run, device: torch.device, checkpoint: str = "last") -> Autoencoder:
    """The stage-1 autoencoder of `run`, in eval mode."""
    config = run.config()
    model = Autoencoder(config["shape"], config["latent"]).to(device)
    model.load_state_dict(run.load(checkpoint, device)["models"]["autoencoder"])
    return model.eval()


def train_autoencoder(cfg: AutoencoderConfig) -> dict:
    """Trains stage 1 as configured; returns the summary (also the last line of metrics.jsonl)."""
    device = pick_device(cfg.device, cfg.threads)
    if cfg.resume:
        if cfg.out is None:
            raise ConfigError("--resume needs --out, the run folder to continue")
        stored = Run(cfg.out).config()
        cfg = restore(AutoencoderConfig, stored, resume=True, epochs=cfg.epochs or stored["epochs"],
                      device=cfg.device, threads=cfg.threads, progress=cfg.progress)
    data = load_data(cfg, device)
    cfg = resolve(cfg, data.shape)
    std = datasets.pixel_std(data)
    gamma = parse_gamma(cfg.gamma, lcw_fast.silverman_gamma(std, cfg.batch_size))
    run = Run(cfg.out)
    run.start({**dataclasses.asdict(cfg), "stage": 1, "shape": list(data.shape), "pixel_std": std,
               "gamma_value": gamma}, cfg.resume)

    torch.manual_seed(cfg.seed)
    model = Autoencoder(data.shape, cfg.latent).to(device)

    def loss(x, rng):
        x_hat, z = model(x)
        return autoencoder_loss(cfg.objective, x, x_hat, z, cfg.lam, gamma)

    def validate():
        x_hat, z = model(data.heldout)
        chunks = list(zip(data.heldout.split(cfg.batch_size), x_hat.split(cfg.batch_size),
                          z.split(cfg.batch_size)))
        val = sum(autoencoder_loss(cfg.objective, *c, cfg.lam, gamma).item() for c in chunks) / len(chunks)
        return {"val_loss": val, "reconstruction_error": squared_error(x_hat, data.heldout).item(),
                "latent_normality": lcw_fast.cw_normality(z.float()).item()}

    stage = Stage({"autoencoder": model}, model, loss, validate)
    loop = LoopConfig(steps=datasets.steps(cfg.epochs, len(data), cfg.batch_size), lr=cfg.lr, seed=cfg.seed,
                      eval_every=cfg.eval_every, ckpt_every=cfg.ckpt_every, amp=cfg.amp, progress=cfg.progress)
    final = fit(stage, lambda start: datasets.batches(data, start, cfg.batch_size, cfg.seed, device, cfg.workers),
                loop, run, device, cfg.resume)

    gamma_m = metric_gamma(std)
    samples = map_batched(model.decoder, metric_noise(cfg.latent, device))
    reconstructions = map_batched(lambda x: model(x)[0], data.heldout)
    summary = {"step": loop.steps, "stage": 1, "run": str(run.path), **final, "metric_gamma": gamma_m,
               "heldout_metric": kernel_metric(samples, data.heldout, gamma_m),
               "heldout_metric_reconstructions": kernel_metric(reconstructions, data.heldout, gamma_m)}
    run.log(summary)
    plots.grid(samples[:64], run.path / "samples.png")
    plots.reconstructions(data.heldout[:32], reconstructions[:32], run.path / "reconstructions.png")
    plots.loss_curve(run.metrics(), run.path / "loss.png", f"stage 1 ({cfg.objective}) on {cfg.data}",
                     LOSS_NAMES[cfg.objective])
    print(f"stage 1 ({cfg.objective}) done: {run.path}\n  held-out metric D(z), z~N(0,I): "
          f"{summary['heldout_metric']:.5f}   (reconstructions D(E(x)): "
          f"{summary['heldout_metric_reconstructions']:.5f}; gamma {gamma_m:.5f})")
    return summary


def main(argv=None) -> None:
    run_cli(scored, train_autoencoder, config_from_args(AutoencoderConfig, "training.train", __doc__, argv))


if __name__ == "__main__":
    main()
