"""Before/after: a few training steps in the style of the LCW-generator authors' autoencoder code
(their costs "cwae" and "cw2_dynamic"), with their `metrics.cw` and with `lcw_fast.compat.gmum`.
The only difference between the two runs is which module the CW functions come from, i.e. the
import line

    from metrics.cw import cw_normality, cw_sampling_silverman             # before
    from lcw_fast.compat.gmum import cw_normality, cw_sampling_silverman   # after

    python docs/examples/cwae_step_gmum.py --gmum-src /path/to/lcw-generator/src

Both runs start from the same weights and data (float32, random 28x28 "images", an MLP autoencoder
with an 8-D latent, Adam); the script prints each step's losses from both and their difference
|a - b| / max(|b|, 1) (relative, but absolute for losses below 1: "cw2_dynamic" is a sum of logs
near 0), and exits 1 if it exceeds --tol. Without --gmum-src only the lcw_fast run is printed.
"""
import argparse
import importlib
import sys

import torch


def cost_functions(cw, lambda_val: float):
    """The authors' autoencoder costs, with the CW functions of module `cw`: (output, latent, batch) -> loss."""
    def mean_per_image_se(x, y):
        return (x - y).square().flatten(1).sum(1).mean()

    return {
        "cwae": lambda x, z, y: mean_per_image_se(x, y) + lambda_val * torch.log(cw.cw_normality(z)),
        "cw2_dynamic": lambda x, z, y: torch.log(cw.cw_sampling_silverman(x, y)) + lambda_val * torch.log(cw.cw_normality(z)),
    }


def train(cw, model: str, steps: int, batch_size: int, seed: int = 0):
    """Losses of `steps` Adam steps of cost `model` on a fixed random batch -> list of floats."""
    torch.manual_seed(seed)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 200), torch.nn.ReLU(), torch.nn.Linear(200, 8))
    decoder = torch.nn.Sequential(torch.nn.Linear(8, 200), torch.nn.ReLU(), torch.nn.Linear(200, 784), torch.nn.Sigmoid(),
                                  torch.nn.Unflatten(1, (1, 28, 28)))
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    batch = torch.rand(batch_size, 1, 28, 28)
    cost = cost_functions(cw, lambda_val=1.0)[model]
    losses = []
    for _ in range(steps):
        latent = encoder(batch)
        loss = cost(decoder(latent), latent, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gmum-src", help="the src/ folder of a gmum/lcw-generator checkout (for the 'before' run)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args(argv)

    modules = {"lcw_fast": importlib.import_module("lcw_fast.compat.gmum")}
    if args.gmum_src:
        sys.path.insert(0, args.gmum_src)
        modules = {"gmum": importlib.import_module("metrics.cw"), **modules}
    worst = 0.0
    for model in ("cwae", "cw2_dynamic"):
        runs = {name: train(cw, model, args.steps, args.batch_size) for name, cw in modules.items()}
        for step, values in enumerate(zip(*runs.values())):
            diff = (max(values) - min(values)) / max(abs(values[0]), 1.0)
            worst = max(worst, diff)
            shown = "  ".join(f"{name} {value:.9g}" for name, value in zip(runs, values))
            print(f"{model:12s} step {step}: {shown}" + (f"  diff {diff:.1e}" if len(values) > 1 else ""))
    if len(modules) > 1:
        print(f"largest difference: {worst:.2e} (tol {args.tol:g})")
    return int(worst > args.tol)


if __name__ == "__main__":
    sys.exit(main())
