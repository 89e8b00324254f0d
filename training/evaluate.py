"""The held-out kernel metric and batched generation.

metric = cw_distance(1,000 generated images, 1,000 held-out real images, gamma_metric), images
flattened to vectors in [0, 1], with the fixed gamma_metric = silverman_gamma(sigma, 1000),
sigma the pixel std of the training set (mnist5k: sigma = 0.3092 -> gamma_metric = 0.00678).
Generated images come from noise drawn with the fixed seed METRIC_SEED, so the number is
reproducible and stage 1 (D(z)) and stage 2 (D(LG(z'))) are compared on equal terms.
"""
import torch

import lcw_fast

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
