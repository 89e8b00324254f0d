"""Training throughput of the CelebA architecture (conv autoencoder, cw2 loss) on random 64x64 images.

    python -m training.throughput --batch-size 256 --backends auto reference [--amp] [--json FILE]

For each lcw_fast backend: images/s over --steps timed Adam steps (after --warmup untimed ones) and
peak memory (CUDA: torch.cuda.max_memory_allocated; CPU: the process's peak resident set, which
only grows, so later backends include earlier ones).
"""
import argparse
import json
import resource
import time
from pathlib import Path

import torch

import lcw_fast
from benchmarks.run import device_name, git_commit

from .models import Autoencoder
from .objectives import autoencoder_loss
from .train import pick_device

SHAPE = (3, 64, 64)


def measure(backend: str, batch_size: int, steps: int, warmup: int, latent: int, lam: float,
            device: torch.device, amp: bool) -> dict:
    """images/s and peak memory of cw2 training steps with `backend` on random images."""
    torch.manual_seed(0)
    model = Autoencoder(SHAPE, latent).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    x = torch.rand(batch_size, *SHAPE, device=device)
    gamma = lcw_fast.silverman_gamma(x.std().item(), batch_size)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=amp and device.type == "cuda")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            start = time.perf_counter()
        with autocast:
            x_hat, z = model(x)
            loss = autoencoder_loss("cw2", x, x_hat, z, lam, gamma, backend)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync()
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"backend": backend, "images_per_s": batch_size * steps / seconds, "peak_memory_bytes": peak,
            "loss": loss.item()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256, help="images per step")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per backend")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, caches)")
    parser.add_argument("--latent", type=int, default=128, help="latent dimension")
    parser.add_argument("--lam", type=float, default=0.2, help="lambda of the cw2 loss")
    parser.add_argument("--backends", nargs="+", default=["auto", "reference"], choices=lcw_fast.BACKENDS,
                        help="lcw_fast backends to compare")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, ...")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    results = [measure(b, args.batch_size, args.steps, args.warmup, args.latent, args.lam, device, args.amp)
               for b in args.backends]
    machine = device_name(device)
    for r in results:
        print(f"{r['backend']:10} {r['images_per_s']:10.1f} images/s   peak memory "
              f"{r['peak_memory_bytes'] / 2 ** 30:7.2f} GiB   ({machine}, batch {args.batch_size}, amp {args.amp})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            commit, dirty = git_commit()
            json.dump({"machine": machine, "torch": torch.__version__, "commit": commit, "dirty": dirty, **vars(args),
                       "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
