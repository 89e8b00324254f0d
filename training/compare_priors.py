"""Acceptance check of the Latent Trick: on mnist5k, is D(LG(z')) closer to the held-out digits than D(z)?

    python -m training.compare_priors [--objectives cw2 ae] [--seeds 0 1] [--out runs/compare]

Trains both stages with default settings for every (objective, seed) and prints the held-out
kernel metric of D(z), z ~ N(0, I), of D(LG(z')) and of the reconstructions D(E(x)).
"""
import argparse

from .cli import run_cli
from .demo import two_stages
from .objectives import STAGE1


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--objectives", nargs="+", default=["cw2", "ae"], choices=STAGE1, help="first stages")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="seeds (one run of both stages each)")
    parser.add_argument("--out", default="runs/compare", help="parent folder of the runs OUT/<objective>-seed<seed>")
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, ...")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of PyTorch (the MLPs gain nothing from more)")
    args = parser.parse_args(argv)
    rows = []
    for objective in args.objectives:
        for seed in args.seeds:
            first, second = run_cli(two_stages, f"{args.out}/{objective}-seed{seed}", objective, seed,
                                    args.device, args.threads, False)
            rows.append((objective, seed, first["heldout_metric"], second["heldout_metric"],
                         first["heldout_metric_reconstructions"]))
    print(f"\nheld-out kernel metric on mnist5k (gamma {first['metric_gamma']:.5f}; lower is better)")
    print(f"{'stage 1':8} {'seed':>4} {'D(z)':>10} {'D(LG(z))':>10} {'D(E(x))':>10}  LG better")
    for objective, seed, prior, lt, rec in rows:
        print(f"{objective:8} {seed:>4} {prior:10.5f} {lt:10.5f} {rec:10.5f}  {'yes' if lt < prior else 'NO'}")


if __name__ == "__main__":
    main()
