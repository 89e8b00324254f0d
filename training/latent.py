"""Stage 2, the Latent Trick: train the latent generator LG on a frozen stage-1 encoder.

LG maps noise z' ~ N(0, I) to the encoder's latent space by minimising cw_distance(LG(z'), E(x));
the final generator is D(LG(z')).

    python -m training.latent --ae runs/mnist5k-cw2          # writes runs/mnist5k-cw2/latent
    torchrun --nproc_per_node=2 -m training.latent --ae ...  # one global batch over 2 processes
    from training.latent import LatentConfig, train_latent
"""
import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils.data import DataLoader

import lcw_fast

from . import data as datasets
from . import defaults, plots
from .cli import POSITIVE, RunOptions, config_from_args, field, restore, run_cli
from .errors import ConfigError
from .evaluate import finish_stage, map_batched, metric_gamma, metric_noise, scored
from .loop import LoopConfig, Stage, batch_norm_rows, fit
from .models import LatentGenerator, fingerprint, load_autoencoder
from .objectives import latent_trick_loss, parse_gamma
from .runs import Run
from .train import AutoencoderConfig
from .world import start


@dataclass
class LatentConfig(RunOptions):
    ae: Optional[str] = field(None, "the stage-1 run folder (from python -m training.train); required")
    out: Optional[str] = field(None, "run folder (default: <ae>/latent)")
    checkpoint: str = field("last", "which stage-1 checkpoint to encode with", choices=("last", "best"))
    noise: Optional[int] = field(None, "noise dimension of z' (default: 8 for 28x28 data, 24 for stacked-mnist5k, "
                                       "32 for CelebA)",
                                 minimum=POSITIVE)
    epochs: Optional[int] = field(None, "passes over the training images' encodings (default: training.defaults)",
                                  minimum=POSITIVE)
    batch_size: Optional[int] = field(None, "noise samples and encodings per step, over all torchrun processes "
                                            f"(default: {defaults.LATENT['small']['batch_size']})", minimum=POSITIVE)
    lr: Optional[float] = field(None, "Adam learning rate (default: 1e-3)", minimum=POSITIVE)
    gamma: str = field("auto", "latent bandwidth: auto = Silverman (1.06 sigma n^-1/5)^2 from the std of the "
                               "encoded training images (in LG's standardised coordinates, so sigma = 1) and "
                               "the batch size; silverman = per batch; or a number")
    seed: int = field(0, "seed of LG's initialisation, the noise and the data order")


@torch.no_grad()
def encode(encoder, images, device: torch.device, workers: int) -> torch.Tensor:
    """E(x) for a tensor of images or a streaming Dataset -> (N, latent) on `device`."""
    if torch.is_tensor(images):
        return map_batched(encoder, images, 1000)
    loader = DataLoader(images, batch_size=1000, num_workers=workers)
    return torch.cat([encoder(x.to(device)) for x in loader])


def train_latent(cfg: LatentConfig) -> dict:
    """Trains stage 2 as configured; returns the summary (also the last line of metrics.jsonl)."""
    world = start(cfg.device, cfg.threads)
    if cfg.resume:
        if cfg.out is None and cfg.ae is None:
            raise ConfigError("--resume needs --out (or --ae), the stage-2 run folder to continue")
        folder = cfg.out or f"{cfg.ae}/latent"
        stored = Run(folder).config()  # the folder given wins over the "out" it records (it may have been moved)
        cfg = restore(LatentConfig, stored, out=folder, resume=True, overwrite=False,
                      epochs=cfg.epochs or stored["epochs"],
                      chunk_size=cfg.chunk_size or stored.get("chunk_size"), device=cfg.device, threads=cfg.threads,
                      progress=cfg.progress, stage_end_fid=cfg.stage_end_fid)
    if cfg.ae is None:
        raise ConfigError("--ae (the stage-1 run folder) is required")
    device = world.device
    ae_run = Run(cfg.ae)
    stage1 = restore(AutoencoderConfig, ae_run.config(), device=cfg.device, workers=cfg.workers)
    run = Run(cfg.out or f"{cfg.ae}/latent")
    run.check_start(cfg.resume, cfg.overwrite)
    autoencoder = load_autoencoder(ae_run, device, cfg.checkpoint)
    for p in autoencoder.parameters():
        p.requires_grad_(False)
    images = datasets.load(stage1.data, stage1.data_root, workers=cfg.workers).to(device)
    table = defaults.stage2(stage1.data, images.shape)
    cfg = dataclasses.replace(cfg, out=str(run.path), **{k: table[k] for k in table if getattr(cfg, k) is None})
    local_batch = world.local_batch(cfg.batch_size)
    torch.manual_seed(cfg.seed)
    lg = LatentGenerator(cfg.noise, autoencoder.latent).to(device)
    encoded = encode(autoencoder.encoder, images.train, device, cfg.workers)
    lg.set_coordinates(encoded)
    standardised = lambda x: lg.standardise(encode(autoencoder.encoder, x, device, cfg.workers))
    redrawn = None if images.draw is None else (lambda seed, epoch: standardised(images.epoch_images(seed, epoch)))
    latents = datasets.ImageData("latents", lg.standardise(encoded), standardised(images.heldout), redrawn)
    latent_std = latents.train.double().std().item()
    gamma = parse_gamma(cfg.gamma, lcw_fast.silverman_gamma(latent_std, cfg.batch_size))
    steps = datasets.steps(cfg.epochs, len(latents), cfg.batch_size)
    world.barrier()  # every rank has checked the folder before rank 0 writes to it
    if world.writer:
        run.start({**dataclasses.asdict(cfg), "stage": 2, "latent_std": latent_std, "gamma_value": gamma,
                   "encoding_std": lg.std.tolist(), "world_size": world.size, "rank_batch_size": local_batch,
                   "batch_norm_rows": batch_norm_rows(lg, local_batch, cfg.chunk_size, world.size, cfg.sync_bn),
                   "ae_step": ae_run.step(cfg.checkpoint), "ae_encoder_sha256": fingerprint(autoencoder.encoder)},
                  cfg.resume)
    val_noise = metric_noise(cfg.noise, device, len(latents.heldout))

    def noise(standardised, rng):  # this rank's rows of the global batch's noise
        return (world.shard(torch.randn(len(standardised) * world.size, cfg.noise, generator=rng)).to(device),)

    def validate():
        return {"val_loss": latent_trick_loss(lg.net(val_noise), latents.heldout, gamma).item()}

    stage = Stage({"lg": lg}, lg, inputs=noise, forward=lambda z: (lg.net(z),),
                  loss=lambda standardised, out: latent_trick_loss(out[0], standardised, gamma, world.group),
                  validate=validate)
    loop = LoopConfig.of(cfg, steps)
    final = fit(stage, lambda first: datasets.batches(latents, first, cfg.batch_size, cfg.seed, device,
                                                      rank=world.rank, ranks=world.size),
                loop, run, world, cfg.resume)
    if not world.writer:
        return final

    gamma_m = metric_gamma(ae_run.config()["pixel_std"])
    samples = map_batched(lambda z: autoencoder.decoder(lg(z)), metric_noise(cfg.noise, device))
    prior = [r for r in ae_run.metrics() if "heldout_metric" in r]
    summary = finish_stage(run, 2, loop.steps, final, samples, images.heldout, gamma_m,
                           f"stage 2, Latent Trick: loss cw_distance(LG(z′), E(x)) on {cfg.ae}", "lt",
                           heldout_metric_stage1=prior[-1]["heldout_metric"] if prior else None)
    pairs = metric_noise(cfg.noise, device, 16)
    plots.interpolations(lg, autoencoder.decoder, pairs[:8], pairs[8:], run.path / "interpolations.png")
    print(f"stage 2 done: {run.path}\n  held-out metric D(LG(z')): {summary['heldout_metric']:.5f}   "
          f"(stage 1 D(z): {summary['heldout_metric_stage1']}; gamma {gamma_m:.5f})")
    return summary


def main(argv=None) -> None:
    module = "training.latent"
    run_cli(module, scored, train_latent, config_from_args(LatentConfig, module, __doc__, argv))


if __name__ == "__main__":
    main()
