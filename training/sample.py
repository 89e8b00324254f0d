"""Draw images from a trained run: D(z), z ~ N(0, I) for a stage-1 run; D(LG(z')) for a stage-2 run; G(z)
for a data-space generator run (training.generator).

    python -m training.sample runs/mnist5k-cw2/latent --n 64 --out samples.png
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from . import plots
from .cli import POSITIVE, config_from_args, field, run_cli, validate
from .errors import ConfigError
from .models import DataGenerator, load_autoencoder, load_data_generator, load_generator
from .runs import Run
from .world import pick_device


@dataclass
class SampleConfig:
    run: str = field(None, "a run folder (stage 1 from training.train, stage 2 from training.latent, or a "
                           "data-space generator from training.generator)", type=str)
    n: int = field(64, "number of images in the grid", minimum=POSITIVE)
    nrow: int = field(8, "images per grid row", minimum=POSITIVE)
    out: Optional[str] = field(None, "PNG file to write, or a folder to write samples-seed<seed>.png into "
                                     "(default: the run folder)")
    seed: int = field(0, "seed of the noise")
    checkpoint: str = field("last", "which checkpoint to sample from", choices=("last", "best"))
    interpolations: bool = field(False, "stage-2 runs only: also write <out>-interpolations.png (the two "
                                        "interpolations of the paper's Fig. 7), 8 pairs x 10 steps")
    device: str = field("auto", "auto (cuda if available, else cpu), cpu, cuda, ...")

    def __post_init__(self):
        validate(self)


def networks(run: Run, device: torch.device, checkpoint: str = "last"):
    """In eval mode: (LG, autoencoder) of a stage-2 run, (None, autoencoder) of a stage-1 run,
    (None, G) of a data-space generator run."""
    stage = run.config()["stage"]
    if stage == 2:
        return load_generator(run, device, checkpoint)
    if stage == "generator":
        return None, load_data_generator(run, device, checkpoint)
    return None, load_autoencoder(run, device, checkpoint)


def as_generator(lg, network):
    """(noise dimension, noise -> images function) of networks(...): D(LG(z')), D(z) without LG, or G(z)."""
    if isinstance(network, DataGenerator):
        return network.noise, network
    if lg is not None:
        return lg.noise, lambda z: network.decoder(lg(z))
    return network.latent, network.decoder


def generator(run: Run, device: torch.device, checkpoint: str = "last"):
    """(noise dimension, noise -> images function) of a stage-1 or stage-2 run."""
    return as_generator(*networks(run, device, checkpoint))


@torch.no_grad()
def sample(cfg: SampleConfig) -> str:
    """Writes the PNG(s), titled with the generator, run, step and seed, and prints their paths; returns the
    sample grid's path."""
    device = pick_device(cfg.device)
    run = Run(cfg.run)
    stage = run.config()["stage"]
    if cfg.interpolations and stage != 2:
        hint = f", try {Path(cfg.run) / 'latent'}" if stage == 1 else ""
        raise ConfigError(f"--interpolations needs a stage-2 run (from training.latent: the interpolations go "
                          f"through LG); {cfg.run} is a {'stage-1' if stage == 1 else 'data-space generator'} "
                          f"run{hint}")
    lg, autoencoder = networks(run, device, cfg.checkpoint)
    dim, generate = as_generator(lg, autoencoder)
    rng = torch.Generator().manual_seed(cfg.seed)
    out = cfg.out or str(run.path)
    if not out.lower().endswith(".png"):
        Path(out).mkdir(parents=True, exist_ok=True)
        out = str(Path(out) / f"samples-seed{cfg.seed}.png")
    title = plots.samples_title(run.path, stage, run.step(cfg.checkpoint), cfg.seed)
    plots.grid(generate(torch.randn(cfg.n, dim, generator=rng).to(device)), out, nrow=cfg.nrow, title=title)
    print(f"samples: {out}")
    if cfg.interpolations:
        ends = torch.randn(16, dim, generator=rng).to(device)
        paths = out.removesuffix(".png") + "-interpolations.png"
        plots.interpolations(lg, autoencoder.decoder, ends[:8], ends[8:], paths)
        print(f"interpolations: {paths}")
    return out


def main(argv=None) -> None:
    module = "training.sample"
    run_cli(module, sample, config_from_args(SampleConfig, module, __doc__, argv, positional=("run",)))


if __name__ == "__main__":
    main()
