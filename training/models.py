"""The paper's networks (Architecture section). Images are (B, C, H, W) in [0, 1]; latents (B, latent).

28x28 grey (and any other shape but 3x64x64): MLP encoder/decoder, 3 hidden layers of 256 units with
BatchNorm, as in the authors' code (gmum/lcw-generator); the paper's text gives 200 units without
BatchNorm (mlp_width=200, batch_norm=False builds that).
3x64x64 RGB (CelebA): convolutional encoder/decoder.
Latent generator LG: noise (B, noise) -> latent (B, latent).
Data-space generator G (the CW-/SW-Generator baselines): noise (B, noise) -> images (B, C, H, W).
load_autoencoder / load_generator / load_data_generator rebuild the trained networks of a run folder;
load_generator warns when the stage-1 encoder LG was trained on has changed since (stage 1 resumed or
replaced).
"""
import hashlib
import math
import sys
from typing import Optional

import torch
from torch import nn

from .runs import Run

ENCODER_CHANNELS = (128, 256, 512, 1024)
DECODER_CHANNELS = (1024, 512, 256, 128)


def _mlp(sizes, hidden_layers: int, width: int, out: int, batch_norm: bool = False) -> list:
    layers, previous = [], sizes
    for _ in range(hidden_layers):
        layers += [nn.Linear(previous, width)] + ([nn.BatchNorm1d(width)] if batch_norm else []) + [nn.ReLU()]
        previous = width
    return layers + [nn.Linear(previous, out)]


MLP_WIDTH = 256


def mlp_settings(config: dict) -> dict:
    """Autoencoder's mlp_width and batch_norm as a run's config.json records them; runs written before
    the MLPs had BatchNorm record neither and had 200 units without BatchNorm."""
    return {"mlp_width": config.get("mlp_width", 200), "batch_norm": config.get("batch_norm", False)}


class MLPEncoder(nn.Sequential):
    """(B, C, H, W) -> (B, latent): layers x (Linear width, [BatchNorm], ReLU) -> Linear(latent)."""

    def __init__(self, shape, latent: int, width: int = MLP_WIDTH, layers: int = 3, batch_norm: bool = True):
        super().__init__(nn.Flatten(), *_mlp(math.prod(shape), layers, width, latent, batch_norm))


class MLPDecoder(nn.Sequential):
    """(B, latent) -> (B, C, H, W): layers x (Linear width, [BatchNorm], ReLU) -> Linear(C*H*W) -> sigmoid."""

    def __init__(self, shape, latent: int, width: int = MLP_WIDTH, layers: int = 3, batch_norm: bool = True):
        super().__init__(*_mlp(latent, layers, width, math.prod(shape), batch_norm), nn.Sigmoid(),
                         nn.Unflatten(1, tuple(shape)))


def _conv_block(conv: nn.Module, channels: int) -> list:
    return [conv, nn.BatchNorm2d(channels), nn.ReLU()]


class ConvEncoder(nn.Sequential):
    """(B, 3, 64, 64) -> (B, latent): 4 x (Conv 4x4 stride 2, BN, ReLU) with 128..1024 channels -> Linear."""

    def __init__(self, latent: int, channels=ENCODER_CHANNELS):
        layers, previous = [], 3
        for c in channels:
            layers += _conv_block(nn.Conv2d(previous, c, 4, stride=2, padding=1), c)
            previous = c
        side = 64 // 2 ** len(channels)
        super().__init__(*layers, nn.Flatten(), nn.Linear(previous * side * side, latent))


class ConvDecoder(nn.Sequential):
    """(B, latent) -> (B, 3, 64, 64): Linear(latent -> 1024*8*8) -> 3 x (ConvTranspose 4x4 stride 2,
    BN, ReLU) with 512, 256, 128 channels -> ConvTranspose 3x3 to 3 channels -> (tanh + 1) / 2."""

    def __init__(self, latent: int, channels=DECODER_CHANNELS):
        layers, previous = [], channels[0]
        for c in channels[1:]:
            layers += _conv_block(nn.ConvTranspose2d(previous, c, 4, stride=2, padding=1), c)
            previous = c
        super().__init__(nn.Linear(latent, channels[0] * 8 * 8), nn.Unflatten(1, (channels[0], 8, 8)), *layers,
                         nn.ConvTranspose2d(previous, 3, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (super().forward(z) + 1.0) / 2.0


class Autoencoder(nn.Module):
    """encoder E: images -> latents, decoder D: latents -> images. width: a factor on the conv
    networks' channel counts (the benchmarks narrow them for CPU runs; training uses 1).
    mlp_width, batch_norm: hidden units and BatchNorm of the MLPs (the conv networks always have BatchNorm)."""

    def __init__(self, shape, latent: int, width: float = 1.0, mlp_width: int = MLP_WIDTH, batch_norm: bool = True):
        super().__init__()
        self.shape, self.latent = tuple(shape), latent
        if self.shape == (3, 64, 64):
            narrow = lambda channels: tuple(max(1, round(c * width)) for c in channels)
            self.encoder = ConvEncoder(latent, narrow(ENCODER_CHANNELS))
            self.decoder = ConvDecoder(latent, narrow(DECODER_CHANNELS))
        else:
            self.encoder = MLPEncoder(shape, latent, mlp_width, batch_norm=batch_norm)
            self.decoder = MLPDecoder(shape, latent, mlp_width, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor):
        """(B, C, H, W) -> (reconstruction (B, C, H, W), latent (B, latent))."""
        z = self.encoder(x)
        return self.decoder(z), z


class LatentGenerator(nn.Module):
    """LG: (B, noise) -> (B, latent): layers x (Linear width, BatchNorm, ReLU) -> Linear(latent).

    The network works in standardised latent coordinates: LG(z) = mean + std * net(z), with `mean`
    and `std` (buffers, saved with the weights) the per-dimension statistics of the encoded training
    images (set_coordinates). Stage 2 compares net(z') with standardise(E(x)), so one bandwidth fits
    every latent dimension however unevenly the encoder spreads them.
    """

    def __init__(self, noise: int, latent: int, width: int = 512, layers: int = 5):
        super().__init__()
        self.noise, self.latent = noise, latent
        self.net = nn.Sequential(*_mlp(noise, layers, width, latent, batch_norm=True))
        self.register_buffer("mean", torch.zeros(latent))
        self.register_buffer("std", torch.ones(latent))

    @torch.no_grad()
    def set_coordinates(self, encodings: torch.Tensor) -> None:
        """Per-dimension mean and std of (N, latent) encodings."""
        self.mean.copy_(encodings.mean(0))
        self.std.copy_(encodings.std(0).clamp_min(1e-6))

    def standardise(self, encodings: torch.Tensor) -> torch.Tensor:
        return (encodings - self.mean) / self.std

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean + self.std * self.net(z)


GENERATOR_WIDTH = 512


class DataGenerator(nn.Sequential):
    """G: (B, noise) -> (B, C, H, W) images in [0, 1], the paper's CW- and SW-Generator (as the authors'
    code): blocks x (Linear 512 without bias, BatchNorm, ReLU), then for 3x64x64 the CelebA decoder on
    512 inputs (4 blocks), else Linear(C*H*W) -> sigmoid (6 blocks). batch_norm=False drops the
    BatchNorm and gives the Linear layers their bias back (the tests' networks)."""

    def __init__(self, shape, noise: int, width: int = GENERATOR_WIDTH, batch_norm: bool = True):
        self.shape, self.noise = tuple(shape), noise
        celeba = self.shape == (3, 64, 64)
        layers, previous = [], noise
        for _ in range(4 if celeba else 6):
            layers += [nn.Linear(previous, width, bias=not batch_norm)] + (
                [nn.BatchNorm1d(width)] if batch_norm else []) + [nn.ReLU()]
            previous = width
        head = [ConvDecoder(width)] if celeba else [nn.Linear(width, math.prod(self.shape)), nn.Sigmoid(),
                                                     nn.Unflatten(1, self.shape)]
        super().__init__(*layers, *head)


def load_autoencoder(run: Run, device: torch.device, checkpoint: str = "last") -> Autoencoder:
    """The stage-1 autoencoder of `run`, in eval mode."""
    config = run.config()
    model = Autoencoder(config["shape"], config["latent"], **mlp_settings(config)).to(device)
    model.load_state_dict(run.load(checkpoint, device)["models"]["autoencoder"])
    return model.eval()


def fingerprint(module: nn.Module) -> str:
    """sha256 (hex) of a module's state: every parameter and buffer, in state_dict order, as bytes."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def stale_encoder(run: Run, config: dict, autoencoder: Autoencoder) -> Optional[str]:
    """Why LG of the stage-2 run (its config.json `config`) no longer fits the encoder of its stage-1 run
    now loaded as `autoencoder`, or None. Stage 2 records the encoder's fingerprint and checkpoint step
    (runs from before that record are not checked)."""
    if "ae_encoder_sha256" not in config or fingerprint(autoencoder.encoder) == config["ae_encoder_sha256"]:
        return None
    ae, checkpoint = config["ae"], config["checkpoint"]
    return (f"{run.path}: LG was trained on the encoder of {ae}/{checkpoint}.pt at step {config['ae_step']}, and "
            f"that checkpoint has changed since (now step {Run(ae).step(checkpoint)}: stage 1 was resumed or "
            f"replaced), so D(LG(z')) decodes latents learnt from an older encoder. Retrain stage 2: "
            f"python -m training.latent --ae {ae} --overwrite")


def load_generator(run: Run, device: torch.device, checkpoint: str = "last"):
    """(LG in eval mode, the stage-1 autoencoder in eval mode) of a stage-2 run; warns on stderr when the
    stage-1 checkpoint changed after LG was trained (stale_encoder)."""
    config = run.config()
    autoencoder = load_autoencoder(Run(config["ae"]), device, config["checkpoint"])
    stale = stale_encoder(run, config, autoencoder)
    if stale:
        print(f"warning: {stale}", file=sys.stderr)
    lg = LatentGenerator(config["noise"], autoencoder.latent).to(device)
    lg.load_state_dict(run.load(checkpoint, device)["models"]["lg"])
    return lg.eval(), autoencoder


def load_data_generator(run: Run, device: torch.device, checkpoint: str = "last") -> DataGenerator:
    """The generator G of a data-space generator run (training.generator), in eval mode."""
    config = run.config()
    model = DataGenerator(config["shape"], config["noise"], batch_norm=config["batch_norm"]).to(device)
    model.load_state_dict(run.load(checkpoint, device)["models"]["generator"])
    return model.eval()
