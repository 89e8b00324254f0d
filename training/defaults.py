"""Default hyperparameters, from the paper's Table 2 and the issue (Adam everywhere).

Stage 1 (autoencoder), by data family and objective:

| data                          | objective | latent | batch | lr    | lambda | epochs |
| ----------------------------- | --------- | ------ | ----- | ----- | ------ | ------ |
| mnist5k, mnist, grey folder   | ae        | 8      | 256   | 1e-3  | -      | 100 (mnist5k), 50 |
| mnist5k, mnist, grey folder   | cwae      | 8      | 256   | 1e-3  | 1      | 100 (mnist5k), 50 |
| mnist5k, mnist, grey folder   | cw2       | 8      | 256   | 2e-3  | 1 (mnist5k: 0.1) | 100 (mnist5k), 50 |
| fmnist                        | as mnist, but cwae lambda = 10 |       |       |        |        |
| celeba, RGB folder            | ae        | 128    | 256   | 1e-3  | -      | 30     |
| celeba, RGB folder            | cwae      | 128    | 256   | 5e-4  | 5      | 30     |
| celeba, RGB folder            | cw2       | 128    | 256   | 5e-4  | 0.2    | 30     |

Stage 2 (latent generator LG, any first stage): noise 8 (28x28 data) or 32 (CelebA), batch 256,
lr 1e-3, 5 x 512 hidden units; epochs 100 (mnist5k) / 50 (mnist, fmnist) / 30 (celeba), counted
in passes over the training images.

Where we differ from the paper, and why:
- CelebA latent 128 (the paper's +LT rows); its stand-alone CW² / CWAE / AE rows use 64 (--latent 64).
- mnist5k cw2: lambda 0.1 instead of MNIST's 1. The larger lambda is, the closer the CW² latent is
  to N(0, I) and the closer the prior samples D(z) get to the reconstruction floor D(E(x)) on the
  held-out metric, which bounds what the Latent Trick can reach (D(LG(z')) lands on that floor).
  Measured with `python -m training.compare_priors` (4 seeds): lambda 1 gave D(z) 0.0202 against a
  floor of 0.0196 and D(LG(z')) 0.0209 (worse); lambda 0.2 gave D(z) below the floor on seed 0
  (0.0258 vs 0.0272; the LT helped on seeds 1-3 only); lambda 0.1 leaves a clearly non-Gaussian
  latent (D(z) 0.039-0.054) that the LT maps onto the floor on every seed (D(LG(z')) 0.027-0.029).
  lambda=1 stays the default for mnist and fmnist.
- Stage 2 works in per-dimension standardised latent coordinates (LatentGenerator.set_coordinates),
  so the Silverman bandwidth fits every latent dimension: with lambda 0.1 the encoder spreads its
  dimensions unevenly, the pooled-std bandwidth came out at 24.8 and LG missed the encodings badly
  (D(LG(z')) 0.12-0.25 on 2 of 3 seeds).
- Stage-2 lr 1e-3 (the paper: 5e-4; the issue allows 5e-4..2e-3): 100 mnist5k epochs are only
  1,500 steps (4,000 digits, 15 steps per epoch); by then LG's loss is at the CW distance of two
  independent batches of real encodings.
- Epoch counts are ours (the paper does not give them); mnist5k's are sized for the CPU demo.
"""
STAGE1 = {
    "small": {"ae": dict(latent=8, batch_size=256, lr=1e-3, lam=0.0),
              "cwae": dict(latent=8, batch_size=256, lr=1e-3, lam=1.0),
              "cw2": dict(latent=8, batch_size=256, lr=2e-3, lam=1.0)},
    "celeba": {"ae": dict(latent=128, batch_size=256, lr=1e-3, lam=0.0),
               "cwae": dict(latent=128, batch_size=256, lr=5e-4, lam=5.0),
               "cw2": dict(latent=128, batch_size=256, lr=5e-4, lam=0.2)},
}
# (data, objective) -> values that differ from the family's row (see the module docstring)
OVERRIDES = {("fmnist", "cwae"): dict(lam=10.0), ("mnist5k", "cw2"): dict(lam=0.1)}
EPOCHS = {"mnist5k": 100, "mnist": 50, "fmnist": 50, "celeba": 30}
LATENT_EPOCHS = {"mnist5k": 100, "mnist": 50, "fmnist": 50, "celeba": 30}
LATENT = {"small": dict(noise=8, batch_size=256, lr=1e-3), "celeba": dict(noise=32, batch_size=256, lr=1e-3)}


def family(shape) -> str:
    """"celeba" for 3x64x64 images (the conv networks), "small" for everything else (the MLPs)."""
    return "celeba" if tuple(shape) == (3, 64, 64) else "small"


def stage1(data: str, shape, objective: str) -> dict:
    """Defaults for stage 1: latent, batch_size, lr, lam, epochs."""
    return dict(STAGE1[family(shape)][objective], epochs=EPOCHS.get(data, 30),
                **OVERRIDES.get((data, objective), {}))


def stage2(data: str, shape) -> dict:
    """Defaults for stage 2: noise, batch_size, lr, epochs."""
    return dict(LATENT[family(shape)], epochs=LATENT_EPOCHS.get(data, 30))
