"""Domain features for FID on machines without the Inception weights: a small LeNet-style digit
classifier trained on the data set's training split, its 128 penultimate activations as features.

Trained once per data set (mnist5k, mnist, fmnist: the labelled 28x28 sets; stacked-mnist5k uses
mnist5k's on each channel) and cached as
<cache>/<data>-lenet.pt with a sidecar <data>-lenet.json holding the file's sha256, the checksum of
the training images it was trained on, its test accuracy and its settings; a cache whose checksum or
training data do not match is retrained. mnist5k's classifier (LeNet b845d9d09a3d) is committed in
training/reference/ and copied into an empty cache rather than trained again: a retraining on another CPU
gives another network, and domain FIDs would not compare across machines. Domain FID is only comparable
with domain FID from the same classifier (same sha256), never with Inception FID or the paper's numbers.
"""
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import torch
from torch import nn

from . import data as datasets
from .errors import ConfigError
from .fid import Extractor, to_uint8
from .runs import atomic_text, atomic_write

EPOCHS = 8
BATCH = 128
LR = 1e-3
SEED = 0
# committed classifiers (mnist5k's): trained once, seeded, on one thread; a retraining on another CPU, whose
# kernels use other vector instructions, differs in its last bits and so gives other FIDs. Used wherever
# the cache holds no classifier of the same training data and epochs.
REFERENCE = Path(__file__).parent / "reference"


class LeNet(nn.Module):
    """(B, 1, 28, 28) in [0, 1] -> logits (B, classes); features(): the (B, 128) penultimate ReLU."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(128, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_checksum(images: torch.Tensor, labels: torch.Tensor) -> str:
    """sha256 of the uint8 training images and their labels."""
    digest = hashlib.sha256(to_uint8(images).numpy().tobytes())
    digest.update(labels.numpy().astype("int64").tobytes())
    return digest.hexdigest()


@torch.no_grad()
def accuracy(model: LeNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    predicted = torch.cat([model(x).argmax(1) for x in images.split(1000)])
    return (predicted == labels).double().mean().item()


@torch.enable_grad()  # also when called under no_grad, e.g. from fid_kid at the end of a stage
def train_classifier(images, labels, epochs: int, seed: int = SEED) -> LeNet:
    """Adam, cross entropy, BATCH images per step, `epochs` shuffled passes (seeded), on one CPU thread:
    the float sums of several threads differ with their count, and so would the features of every FID."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_classifier(images, labels, epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _train_classifier(images, labels, epochs: int, seed: int) -> LeNet:
    torch.manual_seed(seed)
    model = LeNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    rng = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(images), generator=rng).split(BATCH):
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def _load(weights: Path, sidecar: Path, checksum: str, epochs: int):
    """(LeNet in eval mode, sidecar dict) from `weights` and `sidecar` where both are there, the sidecar's
    training data checksum and epochs are `checksum` and `epochs` and the file is the one it names; else None."""
    if not (weights.is_file() and sidecar.is_file()):
        return None
    meta = json.loads(sidecar.read_text())
    if meta.get("data_sha256") != checksum or meta.get("epochs") != epochs or meta["sha256"] != _sha256(weights):
        return None
    model = LeNet()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval(), meta


def classifier(name: str, root: str = "data", cache: str = None, epochs: int = None):
    """(LeNet in eval mode, its sidecar dict) for data set `name`, from <cache> (default <root>/features)
    or the committed one in REFERENCE (same training data and epochs), or trained now for `epochs` (default
    EPOCHS); cached. Raises ConfigError for a data set without labels."""
    epochs = epochs or EPOCHS
    if name not in datasets.LABELLED:
        known = ", ".join((*datasets.LABELLED, *datasets.STACKED))
        raise ConfigError(f"no domain feature extractor for --data {name} (only {known}: it is a classifier trained "
                          "on their labels); use --fid inception")
    train_x, train_y, test_x, test_y = datasets.labelled(name, root)
    folder = Path(cache or os.path.join(root, "features"))
    weights, sidecar = folder / f"{name}-lenet.pt", folder / f"{name}-lenet.json"
    checksum = data_checksum(train_x, train_y)
    found = _load(weights, sidecar, checksum, epochs)
    if found:
        return found
    reference = _load(REFERENCE / weights.name, REFERENCE / sidecar.name, checksum, epochs)
    if reference:
        atomic_write(weights, lambda tmp: shutil.copyfile(REFERENCE / weights.name, tmp))
        atomic_text(sidecar, (REFERENCE / sidecar.name).read_text())
        print(f"domain classifier for {name}: the committed LeNet {reference[1]['sha256'][:12]} "
              f"({REFERENCE / weights.name}), cached in {weights}")
        return reference
    print(f"training the domain classifier for {name} ({len(train_x)} images, {epochs} epochs; cached in {weights})")
    start = time.perf_counter()
    model = train_classifier(train_x, train_y, epochs)
    atomic_write(weights, lambda tmp: torch.save(model.state_dict(), tmp))
    meta = {"data": name, "sha256": _sha256(weights), "data_sha256": checksum, "epochs": epochs,
            "test_accuracy": accuracy(model, test_x, test_y), "test_images": len(test_x),
            "train_images": len(train_x), "seconds": time.perf_counter() - start}
    atomic_text(sidecar, json.dumps(meta, indent=2) + "\n")
    print(f"  test accuracy {meta['test_accuracy']:.4f} on {len(test_x)} test images, {meta['seconds']:.0f} s")
    return model, meta


def extractor(name: str, root: str = "data", cache: str = None, device=torch.device("cpu"),
              epochs: int = None) -> Extractor:
    """The clean-fid custom feature extractor of data set `name`: clean-fid's (B, 3, 28, 28) batches in
    [0, 255] (grey PNGs read as RGB, no resize) -> the classifier's (B, 128) features. A stacked data set
    (training.stacked) uses its digits' classifier on each of the three channels and concatenates the
    features, (B, 384): not comparable with the 28x28 domain FID."""
    digits = datasets.STACKED.get(name, name)
    model, meta = classifier(digits, root, cache, epochs)
    model = model.to(device)
    channels = 3 if name in datasets.STACKED else 1

    def features(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([model.features(x[:, c:c + 1].to(device) / 255.0) for c in range(channels)], 1)

    stacked = f", the {digits} LeNet's features of the 3 channels concatenated" if channels == 3 else ""
    label = f"domain (LeNet {meta['sha256'][:12]}, test accuracy {meta['test_accuracy']:.4f}{stacked})"
    return Extractor(label, features, resize=lambda image: image, device=device)
