"""Evaluation: the held-out kernel metric (used by the training loop) and FID / KID through clean-fid.

Held-out kernel metric = cw_distance(1,000 generated images, 1,000 held-out real images, gamma_metric),
images flattened to vectors in [0, 1], with the fixed gamma_metric = silverman_gamma(sigma, 1000),
sigma the pixel std of the training set (mnist5k: sigma = 0.3092 -> gamma_metric = 0.00678).
Generated images come from noise drawn with the fixed seed METRIC_SEED, so the number is
reproducible and stage 1 (D(z)) and stage 2 (D(LG(z'))) are compared on equal terms.

FID / KID (`python -m training.evaluate RUN`, and the domain FID every training CLI writes at the end
of a stage): see EVALUATE_DOC below, training.fid and training.domain. Modes of stacked MNIST
(`--modes`, and at the end of a stage on stacked data): training.modes.
"""
import time
from dataclasses import dataclass
from typing import Optional

import torch

import lcw_fast

from . import defaults, plots
from .cli import POSITIVE, config_from_args, field, run_cli, validate
from .errors import ConfigError
from .modes import SAMPLES, describe, modes_record
from .objectives import LOSS_NAMES

METRIC_SAMPLES = 1000
METRIC_SEED = 2024


def metric_gamma(pixel_std: float) -> float:
    return lcw_fast.silverman_gamma(pixel_std, METRIC_SAMPLES)


def metric_noise(dim: int, device: torch.device, n: int = METRIC_SAMPLES) -> torch.Tensor:
    """(n, dim) standard normal noise from the fixed METRIC_SEED."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(METRIC_SEED)).to(device)


@torch.no_grad()
def map_batched(fn, inputs: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """fn applied to `inputs` in chunks (bounded memory for the conv networks), concatenated."""
    return torch.cat([fn(chunk) for chunk in inputs.split(batch_size)])


@torch.no_grad()
def kernel_metric(generated: torch.Tensor, heldout: torch.Tensor, gamma: float) -> float:
    """cw_distance between generated (n, C, H, W) and held-out (m, C, H, W) images at `gamma`."""
    return lcw_fast.cw_distance(generated.flatten(1).float(), heldout.flatten(1).float(), gamma).item()



def finish_stage(run, stage, steps: int, final: dict, samples: torch.Tensor, heldout: torch.Tensor, gamma: float,
                 loss_title: str, loss: str, **extra) -> dict:
    """The end of a training stage (1, 2 or "generator") after `steps` steps: logs its summary (the loop's
    `final` record, the held-out metric of `samples` (n, C, H, W) against `heldout` at `gamma`, and `extra`)
    to metrics.jsonl, draws samples.png from the first 64 samples and loss.png (titled `loss_title`, the
    y axis named by LOSS_NAMES[loss]); returns the summary."""
    summary = {"step": steps, "stage": stage, "run": str(run.path), **final, "metric_gamma": gamma,
               "heldout_metric": kernel_metric(samples, heldout, gamma), **extra}
    run.log(summary)
    plots.grid(samples[:64], run.path / "samples.png", title=plots.samples_title(run.path, stage, steps))
    plots.loss_curve(run.metrics(), run.path / "loss.png", loss_title, LOSS_NAMES[loss])
    return summary

EVALUATE_DOC = """FID and KID of a trained run through clean-fid: generated images (stage 1: D(z), stage 2:
D(LG(z')), a data-space generator: G(z)) against the training split, as uint8, appended to the run's
metrics.jsonl.

    python -m training.evaluate runs/demo/latent --fid domain --kid --n 2000
    python -m training.evaluate runs/demo --fid inception --inception-weights ~/inception-2015-12-05.pt
    python -m training.evaluate runs/stacked --modes          # stacked-mnist5k: modes hit and KL, 26,000 images

--fid inception: clean-fid's Inception network (the paper's measure, which used 10,000 samples) from a
local weights file (never downloaded). --fid domain: a LeNet classifier of the data set (mnist5k, mnist,
fmnist), trained once and cached; domain FID is comparable only with domain FID, not with Inception FID
or the paper's numbers (stacked-mnist5k: the mnist5k LeNet's features of the 3 channels concatenated, not
comparable with the 28x28 domain FID either).

--modes (stacked-mnist5k runs), instead of FID: the number of the 1,000 modes hit and KL(uniform ||
generated) of --n images (default 26,000), each channel classified by the domain LeNet (training.modes).
"""
STAGE_END_SAMPLES = defaults.STAGE_END_FID  # generated images of the stage-end domain FID (--stage-end-fid)
FID_SAMPLES = 10000         # generated images of `python -m training.evaluate` (the paper's 10,000)
_REFERENCE = {}             # (extractor name, data set, n_real) -> features of the training images, per process


@dataclass
class EvaluateConfig:
    run: str = field(None, "a run folder (stage 1 from training.train, stage 2 from training.latent, or a "
                           "data-space generator from training.generator)", type=str)
    fid: str = field("inception", "feature extractor: inception (clean-fid's, needs the weights file) or domain "
                                  "(a LeNet classifier of mnist5k/mnist/fmnist, offline)", choices=("inception", "domain"))
    kid: bool = field(False, "also compute KID (clean-fid's: --kid-subsets subsets of <= 1,000 images)")
    kid_subsets: int = field(100, "KID subsets (clean-fid's default 100; each costs about 0.75 s of CPU)",
                             minimum=POSITIVE)
    modes: bool = field(False, "stacked-mnist5k runs: instead of FID, the modes hit (of 1,000) and KL(uniform || "
                               "generated), each channel classified by the domain LeNet")
    n: Optional[int] = field(None, f"generated images (default: 10,000 for FID as the paper, {SAMPLES:,} with "
                                   "--modes)", minimum=POSITIVE)
    n_real: Optional[int] = field(None, "training images to compare with (default: the whole training split)",
                                  minimum=POSITIVE)
    inception_weights: Optional[str] = field(None, "the TorchScript Inception file inception-2015-12-05.pt "
                                                   "(default: where clean-fid looks, /tmp on Linux)")
    checkpoint: str = field("last", "which checkpoint to generate with", choices=("last", "best"))
    seed: int = field(0, "seed of the noise")
    device: str = field("auto", "auto (cuda if available, else cpu), cpu, cuda, ...")
    threads: Optional[int] = field(None, "CPU threads of PyTorch", minimum=POSITIVE)

    def __post_init__(self):
        validate(self)


def stage1_config(run) -> dict:
    """The config.json that names the data of a run (data set, data root, pixel std): its own for a
    stage-1 or data-space generator run, its stage-1 run's for a stage-2 run."""
    from .runs import Run

    config = run.config()
    return Run(config["ae"]).config() if config["stage"] == 2 else config


def extractor_for(run, kind: str, device: torch.device, inception_weights: Optional[str] = None):
    """The clean-fid feature extractor `kind` ("inception" or "domain") for the data of `run`."""
    from . import domain, fid

    if kind == "inception":
        return fid.inception(inception_weights, device)
    stage1 = stage1_config(run)
    return domain.extractor(stage1["data"], stage1.get("data_root", "data"), device=device)


def has_domain_extractor(run) -> bool:
    from .data import LABELLED, STACKED

    return stage1_config(run)["data"] in (*LABELLED, *STACKED)


def is_stacked(run) -> bool:
    from .data import STACKED

    return stage1_config(run)["data"] in STACKED


def training_images(run, n: Optional[int] = None) -> torch.Tensor:
    """The first `n` (default all) training images (N, C, H, W) in [0, 1] of the run's data set, on the CPU."""
    from . import data as datasets

    stage1 = stage1_config(run)
    train = datasets.load(stage1["data"], stage1.get("data_root", "data"), workers=stage1.get("workers", 2)).train
    count = len(train) if n is None else min(n, len(train))
    return train[:count] if torch.is_tensor(train) else torch.stack([train[i] for i in range(count)])


@torch.no_grad()
def fid_kid(run, kind: str, n: int, kid: bool, device: torch.device, seed: int = 0, checkpoint: str = "last",
            n_real: Optional[int] = None, inception_weights: Optional[str] = None, kid_subsets: int = 100) -> dict:
    """FID (and KID) of `n` images generated by `run` against its training images; returns the record
    written to metrics.jsonl: fid_<kind>, kid_<kind>, the sample counts, the extractor, the step."""
    from . import fid
    from .sample import generator

    start = time.perf_counter()
    extractor = extractor_for(run, kind, device, inception_weights)
    dim, generate = generator(run, device, checkpoint)
    noise = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).to(device)
    generated = extractor.features(fid.to_uint8(map_batched(generate, noise)))
    key = (extractor.name, stage1_config(run)["data"], n_real)
    if key not in _REFERENCE:
        _REFERENCE[key] = extractor.features(fid.to_uint8(training_images(run, n_real)))
    reference = _REFERENCE[key]
    record = {"step": run.step(checkpoint), "evaluation": "clean-fid", "checkpoint": checkpoint,
              f"fid_{kind}": fid.fid(generated, reference), "features": extractor.name, "generated": n,
              "reference": f"training split, {len(reference)} images", "noise_seed": seed}
    if kid:
        record[f"kid_{kind}"], record["kid_subsets"] = fid.kid(generated, reference, kid_subsets), kid_subsets
    record["seconds"] = time.perf_counter() - start
    run.log(record)
    return record


def stage_end(summary: dict, samples: Optional[int] = None) -> dict:
    """The domain FID of a stage that just finished (`samples` generated images, default
    STAGE_END_SAMPLES; 0 skips it), where its data set has a domain extractor; returns the summary with
    "fid_domain" added (the record goes to metrics.jsonl). On stacked data also the modes and their KL
    (training.modes) of `samples` images, or of modes.SAMPLES (26,000) when `samples` is the default:
    "modes" and "modes_kl" added."""
    from .runs import Run

    modes_samples = SAMPLES if samples is None else samples
    samples = STAGE_END_SAMPLES if samples is None else samples
    if "run" not in summary or samples == 0:  # another torchrun rank (rank 0 scores the stage), or skipped
        return summary
    run = Run(summary["run"])
    if not has_domain_extractor(run):
        return summary
    record = fid_kid(run, "domain", samples, False, torch.device("cpu"))
    print(f"  domain FID (LeNet features, {samples} generated vs the training split): {record['fid_domain']:.3f}")
    summary = {**summary, "fid_domain": record["fid_domain"]}
    if is_stacked(run):
        record = modes_record(run, modes_samples, torch.device("cpu"))
        print(f"  {describe(record)}")
        summary = {**summary, "modes": record["modes"], "modes_kl": record["modes_kl"]}
    return summary


def scored(train_stage, cfg) -> dict:
    """train_stage(cfg) (training.train.train_autoencoder or training.latent.train_latent), then its
    stage-end domain FID of cfg.stage_end_fid images (stage_end); the one place a stage's FID is written."""
    return stage_end(train_stage(cfg), cfg.stage_end_fid)


def evaluate(cfg: EvaluateConfig) -> dict:
    """FID (and KID), or with cfg.modes the modes and KL, of cfg.run; prints and returns the record appended
    to its metrics.jsonl."""
    from .runs import Run
    from .world import pick_device

    device = pick_device(cfg.device, cfg.threads)
    run = Run(cfg.run)
    run.config()
    if cfg.modes:
        if not is_stacked(run):
            raise ConfigError(f"--modes needs a run on stacked data (--data stacked-mnist5k); {cfg.run} was trained "
                              f"on {stage1_config(run)['data']}")
        record = modes_record(run, cfg.n or SAMPLES, device, cfg.seed, cfg.checkpoint)
        print(describe(record, cfg.run))
        return record
    n = cfg.n or FID_SAMPLES
    record = fid_kid(run, cfg.fid, n, cfg.kid, device, cfg.seed, cfg.checkpoint, cfg.n_real,
                     cfg.inception_weights, cfg.kid_subsets)
    kid = f", KID {record[f'kid_{cfg.fid}']:.5f}" if cfg.kid else ""
    print(f"{cfg.run}: {cfg.fid} FID {record[f'fid_{cfg.fid}']:.3f}{kid} ({n} generated vs {record['reference']}; "
          f"{record['features']}; {record['seconds']:.0f} s)")
    return record


def main(argv=None) -> None:
    module = "training.evaluate"
    run_cli(module, evaluate, config_from_args(EvaluateConfig, module, EVALUATE_DOC, argv, positional=("run",)))


if __name__ == "__main__":
    main()
