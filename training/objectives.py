"""Training objectives (values per batch; lower is better).

  ae    mean over the batch of the per-image sum of squared errors
  cwae  ae + lam * log cw_normality(z)
  cw2   log cw_distance(x_hat, x, gamma) + lam * log cw_normality(z)
  lt    cw_distance(LG(z'), E(x), gamma), E frozen (stage 2, the Latent Trick)

gamma is a float (fixed bandwidth) or "silverman" (recomputed per batch by lcw_fast).
"""
from typing import Union

import torch

import lcw_fast

STAGE1 = ("ae", "cwae", "cw2")
# what each objective's loss value is (the loss plots' y axis)
LOSS_NAMES = {"ae": "mean per-image sum of squared errors", "cwae": "squared errors + λ·log cw_normality(z)",
              "cw2": "log cw_distance(x̂, x) + λ·log cw_normality(z)",
              "lt": "cw_distance(LG(z′), E(x)), standardised latents"}
Gamma = Union[float, str]


def squared_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of sum_pixels (x_hat - x)^2; (B, ...) -> 0-dim."""
    return (x_hat - x).square().flatten(1).sum(1).mean()


def autoencoder_loss(objective: str, x: torch.Tensor, x_hat: torch.Tensor, z: torch.Tensor,
                     lam: float, gamma: Gamma, backend: str = "auto") -> torch.Tensor:
    """Stage-1 loss of `objective` for images x: (B, C, H, W), reconstructions x_hat, latents z: (B, latent).
    backend: the lcw_fast backend of the kernel sums ("auto" picks the fastest)."""
    if objective == "ae":
        return squared_error(x_hat, x)
    normality = lam * torch.log(lcw_fast.cw_normality(z.float(), backend=backend))
    if objective == "cwae":
        return squared_error(x_hat, x) + normality
    if objective == "cw2":
        return torch.log(lcw_fast.cw_distance(x_hat.flatten(1).float(), x.flatten(1).float(), gamma, backend)) + normality
    raise ValueError(f"objective must be one of {STAGE1}, got {objective!r}")


def latent_trick_loss(generated: torch.Tensor, encoded: torch.Tensor, gamma: Gamma) -> torch.Tensor:
    """cw_distance(LG(z'), E(x)) for generated: (B, latent) and encoded: (B', latent)."""
    return lcw_fast.cw_distance(generated.float(), encoded.float(), gamma)
