"""PNG pictures: sample grids, reconstructions, the two interpolations of the paper's Fig. 7, loss curves.

Images are (N, C, H, W) tensors in [0, 1].
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import save_image  # noqa: E402


def grid(images: torch.Tensor, path, nrow: int = 8) -> None:
    save_image(images.detach().float().cpu().clamp(0, 1), Path(path), nrow=nrow, padding=2, pad_value=1.0)


def reconstructions(originals: torch.Tensor, reconstructed: torch.Tensor, path, per_row: int = 8) -> None:
    """Rows alternate: `per_row` originals, then their reconstructions."""
    rows = [t for pair in zip(originals.split(per_row), reconstructed.split(per_row)) for t in pair]
    grid(torch.cat(rows), path, nrow=per_row)


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
    """One PNG; per pair of noise points two rows: top linear in Z (alpha LG(z1) + (1-alpha) LG(zk)),
    bottom LG(alpha z1 + (1-alpha) zk)."""
    linear, latent_trick = interpolation_paths(lg, decoder, z1, zk, steps)
    rows = torch.stack([linear, latent_trick], 1).flatten(0, 2)
    grid(rows, path, nrow=steps)


def loss_curve(records: list, path, title: str) -> None:
    """Training loss (every logged step) and validation loss (every evaluation) against the step."""
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r and "heldout_metric" not in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    for points, label in ((train, "train loss"), (val, "validation loss")):
        if points:
            ax.plot(*zip(*points), label=label, marker="." if label.startswith("val") else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
