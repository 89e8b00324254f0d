"""FID and KID through clean-fid, offline.

Images (N, C, H, W) in [0, 1] become uint8 as the paper's code does it (`(x * 255).byte()`, i.e.
truncation), are written as PNG files and read back by clean-fid's own folder pipeline
(`get_folder_features`: PIL, grey -> RGB, resize, feature extractor); FID is clean-fid's
`fid_from_feats` (its formula: `frechet`) and KID its `kernel_distance` (100 subsets of at most 1,000
images, a fixed numpy seed). Two feature extractors:

  inception  clean-fid's InceptionV3W wrapper of the TorchScript Inception network
             inception-2015-12-05.pt (clean-fid's "clean" mode: PIL bicubic resize to 299x299),
             loaded from a local file; without that file a one-line error says where to put it
             (clean-fid itself would try to download it).
  domain     the small classifier of training.domain (28x28 grey data only), on the images at their
             own size; domain FID is NOT comparable with Inception FID or with the paper's numbers.
"""
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .errors import DataUnavailable

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/" + INCEPTION_FILE
# where clean-fid's feature_extractor() looks for (and would download) the weights
CLEANFID_WEIGHTS = os.path.join("./" if platform.system() == "Windows" else "/tmp", INCEPTION_FILE)
KID_SEED = 0


class MissingWeights(DataUnavailable):
    """The Inception weights file is not on this machine (the message says where to put it)."""


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) floats in [0, 1] -> uint8 in [0, 255] by truncation, as the paper's code.
    The 1e-4 keeps k / 255 (a real uint8 pixel) at k despite float rounding."""
    return (images.detach().float().clamp(0, 1) * 255 + 1e-4).to(torch.uint8)


def write_pngs(images: torch.Tensor, folder: Path, start: int = 0) -> None:
    """uint8 (N, C, H, W) -> folder/<start + i>.png (grey for C = 1, RGB for C = 3)."""
    arrays = images.permute(0, 2, 3, 1).cpu().numpy()
    for i, array in enumerate(arrays):
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(folder / f"{start + i:06d}.png")


class Extractor:
    """A clean-fid feature extractor: `model` maps a float batch (B, 3, H, W) in [0, 255] to features
    (B, F); `resize` maps one (H, W, 3) uint8 image to the network's input (None: clean-fid's
    "clean" 299x299 resize); `name` says what the features are (recorded beside the scores)."""

    def __init__(self, name: str, model: Callable, resize=None, device=torch.device("cpu")):
        self.name, self.model, self.resize, self.device = name, model, resize, device

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 250) -> np.ndarray:
        """(N, F) features of uint8 (N, C, H, W) images, through clean-fid's folder pipeline."""
        from cleanfid.fid import get_folder_features

        with tempfile.TemporaryDirectory(prefix="lcw-fid-") as folder:
            for start in range(0, len(images), 1000):
                write_pngs(images[start:start + 1000], Path(folder), start)
            feats = get_folder_features(folder, self.model, num_workers=0, batch_size=batch_size, device=self.device,
                                        mode="clean", custom_fn_resize=self.resize, verbose=False)
        return feats


SINGULAR_NOTE = ("note: {constant} of the {features} features are constant over the generated or the reference "
                 "images (dead ReLU units of the feature network){few}, so the feature covariance is singular. "
                 "scipy's sqrtm then warns \"Matrix is singular\"; that warning is silenced: the Frechet distance is "
                 "still defined (a constant feature adds only its mean difference) and agreed with an eigenvalue "
                 "computation to 2e-6 relative on mnist5k (docs/training.md, FID and KID). Printed once per process.")
_noted = []  # SINGULAR_NOTE printed already (at most one entry)


def frechet(generated: np.ndarray, reference: np.ndarray) -> float:
    """clean-fid's `fid_from_feats` written out (same means, covariances, matrix square root, eps retry and
    imaginary-part check): clean-fid 0.1.35 calls scipy's `sqrtm(.., disp=False)`, whose `disp` SciPy 1.18
    removed (TypeError there; the GPU machine's SciPy), so its own function cannot be called."""
    from scipy import linalg

    mu1, sigma1 = np.mean(generated, axis=0), np.cov(generated, rowvar=False)
    mu2, sigma2 = np.mean(reference, axis=0), np.cov(reference, rowvar=False)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(generated: np.ndarray, reference: np.ndarray) -> float:
    """The Frechet distance (`frechet`, clean-fid's formula) between two (N, F) feature arrays. A
    rank-deficient covariance (constant features, or fewer images than features) makes scipy's sqrtm warn
    "Matrix is singular": the warning is silenced and SINGULAR_NOTE explains it once per process."""
    from scipy.linalg import LinAlgWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LinAlgWarning)
        value = frechet(generated.astype(np.float64), reference.astype(np.float64))
    for w in caught:  # any other warning is passed on
        if not issubclass(w.category, LinAlgWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if any(issubclass(w.category, LinAlgWarning) for w in caught) and not _noted:
        _noted.append(True)
        images, features = min(len(generated), len(reference)), generated.shape[1]
        constant = int(((generated.std(0) == 0) | (reference.std(0) == 0)).sum())
        few = f"; {images} images are fewer than the features" if images <= features else ""
        print(SINGULAR_NOTE.format(constant=constant, features=features, few=few), file=sys.stderr)
    return value


def kid(generated: np.ndarray, reference: np.ndarray, subsets: int = 100) -> float:
    """clean-fid's KID (cubic polynomial kernel, `subsets` subsets of <= 1,000 images; clean-fid's default
    100) in float32, numpy seeded with KID_SEED (the global numpy state is restored)."""
    from cleanfid.fid import kernel_distance

    state = np.random.get_state()
    np.random.seed(KID_SEED)
    try:
        return kernel_distance(generated.astype(np.float32), reference.astype(np.float32), num_subsets=subsets)
    finally:
        np.random.set_state(state)


def inception(weights: str = None, device=torch.device("cpu")) -> Extractor:
    """clean-fid's Inception feature extractor (2048 features, "clean" resize) from a local
    TorchScript file: `weights`, default where clean-fid looks (CLEANFID_WEIGHTS). Never downloads."""
    from cleanfid.inception_torchscript import InceptionV3W

    path = Path(weights or CLEANFID_WEIGHTS)
    if not path.is_file():
        raise MissingWeights(f"Inception weights {path} not found: download {INCEPTION_URL} on a "
                             f"machine with network and put it at {CLEANFID_WEIGHTS} (where clean-fid looks) or pass "
                             f"--inception-weights PATH; --fid domain works offline")

    class LocalInception(InceptionV3W):
        """clean-fid's wrapper (its forward: normalisation, features from .layers) around our file."""

        def __init__(self):
            torch.nn.Module.__init__(self)
            self.base = torch.jit.load(str(path), map_location=device).eval()
            self.layers = self.base.layers
            self.resize_inside = False

    model = LocalInception().to(device).eval()
    return Extractor(f"inception ({path.name})", model, None, device)
