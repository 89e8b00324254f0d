"""The main job: train CW² on mnist5k, then the latent generator, on the CPU in a few minutes.

    python -m training.demo [--out runs/demo]

Writes runs/demo (stage 1: samples.png, reconstructions.png, loss.png, ...) and runs/demo/latent
(stage 2: samples.png, interpolations.png, loss.png, ...), and prints the held-out kernel metric
and the domain FID of D(z), z ~ N(0, I) against D(LG(z')).
"""
import time
from dataclasses import dataclass
from typing import Optional

from .cli import POSITIVE, config_from_args, field, run_cli, stage_end_fid_field, validate
from .evaluate import STAGE_END_SAMPLES, scored
from .latent import LatentConfig, train_latent
from .train import AutoencoderConfig, train_autoencoder


@dataclass
class DemoConfig:
    out: str = field("runs/demo", "run folder of stage 1 (stage 2 goes to OUT/latent)")
    seed: int = field(0, "seed of both stages")
    device: str = field("auto", "auto (cuda if available, else cpu), cpu, cuda, ...")
    threads: int = field(1, "CPU threads of PyTorch (the MLPs gain nothing from more)", minimum=POSITIVE)
    overwrite: bool = field(True, "replace an earlier demo in --out (--no-overwrite refuses instead)")
    stage_end_fid: Optional[int] = stage_end_fid_field()

    def __post_init__(self):
        validate(self)


def two_stages(out: str, objective: str = "cw2", seed: int = 0, device: str = "auto", threads: int = 1,
               progress: bool = True, overwrite: bool = False, stage_end_fid: Optional[int] = None,
               data: str = "mnist5k", epochs: Optional[int] = None, latent_epochs: Optional[int] = None):
    """Stage 1 (`objective`) on `data` into `out` for `epochs`, stage 2 into `out`/latent for `latent_epochs`
    (None: training.defaults), all other settings default, each followed by its domain FID of `stage_end_fid`
    images (default evaluate.STAGE_END_SAMPLES; 0: none); returns (stage-1 summary, stage-2 summary)."""
    common = dict(seed=seed, device=device, threads=threads, progress=progress, overwrite=overwrite,
                  stage_end_fid=stage_end_fid)
    first = scored(train_autoencoder, AutoencoderConfig(data=data, objective=objective, out=out, epochs=epochs,
                                                        **common))
    second = scored(train_latent, LatentConfig(ae=out, epochs=latent_epochs, **common))
    return first, second


def main(argv=None) -> None:
    module = "training.demo"
    args = config_from_args(DemoConfig, module, __doc__, argv)
    start = time.perf_counter()
    first, second = run_cli(module, two_stages, args.out, "cw2", args.seed, args.device, args.threads, True,
                            args.overwrite, args.stage_end_fid)
    fid = lambda summary: (f"   domain FID {summary['fid_domain']:.2f}" if "fid_domain" in summary else "")
    print(f"\nmnist5k, CW² + Latent Trick, {time.perf_counter() - start:.0f} s. Held-out kernel metric "
          f"(cw_distance to 1,000 held-out digits, gamma {first['metric_gamma']:.5f}; lower is better) and domain FID "
          f"(LeNet features, {STAGE_END_SAMPLES if args.stage_end_fid is None else args.stage_end_fid:,} generated "
          f"vs the training digits; lower is better):\n"
          f"  D(z),      z ~ N(0, I):  {first['heldout_metric']:.5f}{fid(first)}\n"
          f"  D(LG(z')), z' ~ N(0, I): {second['heldout_metric']:.5f}{fid(second)}\n"
          f"  D(E(x)), reconstructions of the held-out digits (a floor): "
          f"{first['heldout_metric_reconstructions']:.5f}; reconstruction error {first['reconstruction_error']:.1f} "
          f"(mean per-image sum of squared errors)\n"
          f"Pictures: {args.out}/*.png, {args.out}/latent/*.png")


if __name__ == "__main__":
    main()
