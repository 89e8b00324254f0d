"""Stacked MNIST: three digits as the R, G, B channels of one 3x28x28 image, so 10^3 = 1,000 modes
(the mode of an image is 100 * red digit + 10 * green digit + blue digit).

"stacked-mnist5k" stacks mnist5k's digits (training.data): the training images of every epoch are
drawn afresh from the 4,000 training digits as a pure function of (seed, epoch), as the authors
(gmum/lcw-generator) stack every batch anew; each channel takes every training digit once per epoch
(three independent permutations), so an epoch has 4,000 images, as many as mnist5k's. The fixed draws:
`train` (REFERENCE_SEED, the 4,000 images FID compares with and pixel_std reads) and the 1,000 held-out
images, stacked from the 1,000 held-out digits with HELDOUT_SEED.
"""
import math

import torch

from .data import ImageData

CHANNELS = 3
REFERENCE_SEED = 1     # the fixed draw `train` (FID reference, pixel std, stage 2's coordinates)
HELDOUT_SEED = 2       # the held-out images
EPOCH_STREAM = 2**40   # offsets the per-epoch seeds from training.data.epoch_order's


def triples(digits: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3) int64 indices into `digits` digits, one column per channel: each column the concatenation
    of independent random permutations (truncated to n), so every digit appears equally often per channel."""
    rounds = math.ceil(n / digits)
    return torch.stack([torch.cat([torch.randperm(digits, generator=generator) for _ in range(rounds)])[:n]
                        for _ in range(CHANNELS)], 1)


def stack(digits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(D, 1, 28, 28) digits and (n, 3) indices -> (n, 3, 28, 28) images, channel c = digits[index[:, c]]."""
    return digits[index].flatten(1, 2)


def draw(digits: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """(n, 3, 28, 28) stacked images of `digits` (D, 1, 28, 28), a pure function of the seed."""
    generator = torch.Generator().manual_seed(seed)
    return stack(digits, triples(len(digits), n, generator).to(digits.device))


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of the stacked images of epoch `epoch` of a run with seed `seed`."""
    return EPOCH_STREAM + seed * 1_000_003 + epoch


def stacked(name: str, digits: ImageData) -> ImageData:
    """The stacked data set `name` of the digit data set `digits` (train and held-out tensors (N, 1, 28, 28))."""
    train = digits.train
    return ImageData(name, draw(train, len(train), REFERENCE_SEED), draw(digits.heldout, len(digits.heldout), HELDOUT_SEED),
                     lambda seed, epoch: draw(train, len(train), epoch_seed(seed, epoch)))
