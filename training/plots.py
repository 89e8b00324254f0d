"""PNG pictures: sample grids, reconstructions, the two interpolations of the paper's Fig. 7, loss curves.

Images are (N, C, H, W) tensors in [0, 1].
"""
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402


def grid(images: torch.Tensor, path, nrow: int = 8, row_labels=None, title: str = None) -> None:
    """A grid of `nrow` images per row; `row_labels` (optional, cycled over the rows) are written in a
    white margin left of each row, `title` (optional, wrapped to the width) in a white band above."""
    grid_picture(images, nrow, row_labels, title).save(Path(path), format="PNG")


def read_grid(path, n: int, size: int, channels: int = 1, nrow: int = 8) -> torch.Tensor:
    """The `n` images, (n, channels, size, size) in [0, 1], of a grid(...) PNG drawn without row labels or
    title, as the PNG stores them (8 bits): grid(...) of them draws the same PNG again."""
    picture = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    tile = size + 2  # make_grid's padding of 2
    corners = [(2 + tile * (i // nrow), 2 + tile * (i % nrow)) for i in range(n)]
    return torch.stack([picture[:channels, y:y + size, x:x + size] for y, x in corners]).float() / 255


def side_by_side(panels: list, path, nrow: int = 8) -> None:
    """One PNG of titled grids in a row: `panels` is a list of (images, title), each a grid of `nrow` per row."""
    pictures = [grid_picture(images, nrow, None, title) for images, title in panels]
    joined = Image.new("RGB", (sum(p.width for p in pictures) + 12 * (len(pictures) - 1),
                               max(p.height for p in pictures)), "white")
    left = 0
    for picture in pictures:
        joined.paste(picture, (left, 0))
        left += picture.width + 12
    joined.save(Path(path), format="PNG")


def label_font() -> ImageFont.FreeTypeFont:
    """DejaVu Sans at 10 px, shipped with matplotlib: it has the ² of "CW²", which PIL's default font lacks."""
    from matplotlib import font_manager

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 10)


def grid_picture(images: torch.Tensor, nrow: int, row_labels, title: str) -> Image.Image:
    """The picture of grid(...)."""
    pictures = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    picture = Image.fromarray(pictures.mul(255).add(0.5).clamp(0, 255).byte().permute(1, 2, 0).numpy())
    font = label_font()
    if row_labels:
        margin = 6 + max(int(ImageDraw.Draw(picture).textlength(label, font=font)) for label in row_labels)
        labelled = Image.new("RGB", (margin + picture.width, picture.height), "white")
        labelled.paste(picture, (margin, 0))
        draw, row_height = ImageDraw.Draw(labelled), images.shape[-2] + 2
        for row in range(math.ceil(len(images) / nrow)):
            draw.text((3, 2 + row * row_height + row_height // 2), row_labels[row % len(row_labels)], fill="black",
                      font=font, anchor="lm")
        picture = labelled
    if title:
        width = max(picture.width, 160)
        measure = ImageDraw.Draw(picture).textlength
        chars = max(16, int(len(title) * (width - 6) / max(measure(title, font=font), 1)))
        lines = textwrap.wrap(title, chars)
        while chars > 16 and max(measure(line, font=font) for line in lines) > width - 6:  # wide letters
            chars -= 1
            lines = textwrap.wrap(title, chars)
        titled = Image.new("RGB", (width, picture.height + 4 + 12 * len(lines)), "white")
        titled.paste(picture, (0, 4 + 12 * len(lines)))
        ImageDraw.Draw(titled).multiline_text((3, 2), "\n".join(lines), fill="black", font=font, spacing=2)
        picture = titled
    return picture


def samples_title(run, stage, step: int, seed=None) -> str:
    """The title of a sample grid: which generator drew it (D(z) of stage 1, D(LG(z')) of stage 2, G(z) of a
    data-space generator run, stage "generator"), from which run folder and checkpoint step, and (when
    given) the noise seed."""
    generator, what = {1: ("D(z), z ~ N(0, I)", "stage 1"), 2: ("D(LG(z')), z' ~ N(0, I)", "stage 2"),
                       "generator": ("G(z), z ~ N(0, I)", "data-space generator")}[stage]
    return f"{generator}: {what} of {run}, step {step}" + ("" if seed is None else f", noise seed {seed}")


def reconstructions(originals: torch.Tensor, reconstructed: torch.Tensor, path, per_row: int = 8) -> None:
    """Rows alternate, and are labelled: `per_row` originals, then their reconstructions."""
    rows = [t for pair in zip(originals.split(per_row), reconstructed.split(per_row)) for t in pair]
    grid(torch.cat(rows), path, nrow=per_row, row_labels=("original", "reconstruction"))


def interpolation_paths(lg, decoder, z1: torch.Tensor, zk: torch.Tensor, steps: int = 10):
    """The two interpolations of Fig. 7 between noise points z1, zk: (pairs, noise), as images
    (pairs, steps, C, H, W): linear in Z between LG(z1) and LG(zk), and LG of the linear path in Z'."""
    alpha = torch.linspace(0, 1, steps, device=z1.device).view(1, steps, 1)
    with torch.no_grad():
        a, b = lg(z1), lg(zk)
        in_latent = (1 - alpha) * a.unsqueeze(1) + alpha * b.unsqueeze(1)
        in_noise = (1 - alpha) * z1.unsqueeze(1) + alpha * zk.unsqueeze(1)
        through_lg = lg(in_noise.flatten(0, 1)).view_as(in_latent)
        decode = lambda z: decoder(z.flatten(0, 1)).unflatten(0, z.shape[:2])
        return decode(in_latent), decode(through_lg)


def interpolations(lg, decoder, z1: torch.Tensor, zk: torch.Tensor, path, steps: int = 10) -> None:
    """One PNG; per pair of noise points two labelled rows: top linear in Z (alpha LG(z1) + (1-alpha) LG(zk)),
    bottom through LG, LG(alpha z1 + (1-alpha) zk)."""
    linear, latent_trick = interpolation_paths(lg, decoder, z1, zk, steps)
    rows = torch.stack([linear, latent_trick], 1).flatten(0, 2)
    grid(rows, path, nrow=steps, row_labels=("linear in Z", "through LG"))


def loss_curve(records: list, path, title: str, loss: str = "loss") -> None:
    """Training loss (every logged step) and validation loss (every evaluation) against the step;
    `loss` names the quantity (the y axis label)."""
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r and "heldout_metric" not in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    for points, label in ((train, "train loss"), (val, "validation loss")):
        if points:
            ax.plot(*zip(*points), label=label, marker="." if label.startswith("val") else None)
    ax.set_xlabel("step")
    ax.set_ylabel(loss)
    ax.set_title("\n".join(textwrap.wrap(title, 64)), fontsize=10)  # long run paths stay inside
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
