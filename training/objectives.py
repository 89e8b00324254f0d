"""Training objectives (values per batch; lower is better).

  ae    mean over the batch of the per-image sum of squared errors
  cwae  ae + lam * log cw_normality(z)
  cw2   log cw_distance(x_hat, x, gamma) + lam * log cw_normality(z)
  lt    cw_distance(LG(z'), E(x), gamma), E frozen (stage 2, the Latent Trick)
  cwg   cw_distance(G(z), x, gamma) (the CW-Generator, in data space)
  swg   sliced Wasserstein distance SW(G(z), x) (the SW-Generator, training.sliced)

gamma is a float (fixed bandwidth) or "silverman" (recomputed per batch by lcw_fast).
group: None for one process; a torch.distributed group when each rank holds its rows of a global
batch: the value is then the global batch's on every rank, with the gradient of this rank's rows'
share (lcw_fast.distributed; sum the parameter gradients over the ranks).
"""
from typing import Union

import torch

import lcw_fast
import lcw_fast.distributed

from .errors import ConfigError
from .sliced import sliced_wasserstein

STAGE1 = ("ae", "cwae", "cw2")
# what each objective's loss value is (the loss plots' y axis)
LOSS_NAMES = {"ae": "mean per-image sum of squared errors", "cwae": "squared errors + λ·log cw_normality(z)",
              "cw2": "log cw_distance(x̂, x) + λ·log cw_normality(z)",
              "lt": "cw_distance(LG(z′), E(x)), standardised latents", "cwg": "cw_distance(G(z), x)",
              "swg": "sliced Wasserstein SW(G(z), x)"}
Gamma = Union[float, str]


def parse_gamma(value: str, auto: float) -> Gamma:
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


def squared_error(x_hat: torch.Tensor, x: torch.Tensor, group=None) -> torch.Tensor:
    """Mean over the (global) batch of sum_pixels (x_hat - x)^2; (B, ...) -> 0-dim."""
    per_image = (x_hat - x).square().flatten(1).sum(1)
    if group is None:
        return per_image.mean()
    total = lcw_fast.distributed.all_sum(torch.stack([per_image.sum(), per_image.new_tensor(len(per_image))]), group)
    return total[0] / total[1]


def _distance(x, y, gamma, backend, group):
    if group is None:
        return lcw_fast.cw_distance(x, y, gamma, backend)
    return lcw_fast.distributed.cw_distance(x, y, gamma, group, backend)


def _normality(z, backend, group):
    if group is None:
        return lcw_fast.cw_normality(z, backend=backend)
    return lcw_fast.distributed.cw_normality(z, group=group, backend=backend)


def autoencoder_loss(objective: str, x: torch.Tensor, x_hat: torch.Tensor, z: torch.Tensor,
                     lam: float, gamma: Gamma, backend: str = "auto", group=None) -> torch.Tensor:
    """Stage-1 loss of `objective` for images x: (B, C, H, W), reconstructions x_hat, latents z: (B, latent).
    backend: the lcw_fast backend of the kernel sums ("auto" picks the fastest)."""
    if objective == "ae":
        return squared_error(x_hat, x, group)
    normality = lam * torch.log(_normality(z.float(), backend, group))
    if objective == "cwae":
        return squared_error(x_hat, x, group) + normality
    if objective == "cw2":
        return torch.log(_distance(x_hat.flatten(1).float(), x.flatten(1).float(), gamma, backend, group)) + normality
    raise ValueError(f"objective must be one of {STAGE1}, got {objective!r}")


def latent_trick_loss(generated: torch.Tensor, encoded: torch.Tensor, gamma: Gamma, group=None) -> torch.Tensor:
    """cw_distance(LG(z'), E(x)) for generated: (B, latent) and encoded: (B', latent)."""
    return _distance(generated.float(), encoded.float(), gamma, "auto", group)


def generator_loss(loss: str, generated: torch.Tensor, images: torch.Tensor, gamma: Gamma, projections: int,
                   directions: torch.Generator, group=None) -> torch.Tensor:
    """Data-space generator loss for generated G(z) and real images x, both (B, C, H, W), compared as
    (B, C*H*W) vectors in G's dtype (float32 at least): "cw" cw_distance(G(z), x, gamma) (over the global
    batch under torchrun), "sw" the sliced Wasserstein distance with `projections` directions drawn from
    `directions` (one process)."""
    dtype = torch.promote_types(generated.dtype, torch.float32)
    g, x = generated.flatten(1).to(dtype), images.flatten(1).to(dtype)
    if loss == "cw":
        return _distance(g, x, gamma, "auto", group)
    if loss == "sw":
        if group is not None:
            raise ConfigError("the sliced Wasserstein loss runs in one process, not under torchrun")
        return sliced_wasserstein(g, x, projections, generator=directions)
    raise ValueError(f"loss must be cw or sw, got {loss!r}")
