"""Default hyperparameters, from the paper's Table 2 and the issue (Adam everywhere).

Stage 1 (autoencoder), by data family and objective:

| data                          | objective | latent | batch | lr    | lambda | epochs |
| ----------------------------- | --------- | ------ | ----- | ----- | ------ | ------ |
| mnist5k, mnist, grey folder   | ae        | 8      | 128   | 1e-3  | -      | 200 (mnist5k), 50 |
| mnist5k, mnist, grey folder   | cwae      | 8      | 128   | 1e-3  | 1      | 200 (mnist5k), 50 |
| mnist5k, mnist, grey folder   | cw2       | 8      | 128   | 1e-3  | 1      | 200 (mnist5k), 50 |
| fmnist                        | as mnist, but cwae lambda = 10 |       |       |        |        |
| celeba, RGB folder            | ae        | 128    | 256   | 1e-3  | -      | 30     |
| celeba, RGB folder            | cwae      | 128    | 256   | 5e-4  | 5      | 30     |
| celeba, RGB folder            | cw2       | 128    | 256   | 5e-4  | 0.2    | 30     |

Stage 2 (latent generator LG, any first stage): noise 8 (28x28 data) or 32 (CelebA), batch 256,
lr 1e-3, 5 x 512 hidden units; epochs 100 (mnist5k) / 50 (mnist, fmnist) / 30 (celeba), counted
in passes over the training images.

stacked-mnist5k (3x28x28, three digits): as mnist5k (the MLPs, 200 / 100 epochs of 4,000 images), but
latent 24 and noise 24 (LG's and the data-space generators'), as the authors' stacked-MNIST commands
(gmum/lcw-generator README: --latent_dim 24, --noise_dim 24): three digits need three digits' dimensions.

Where we differ from the paper, and why:
- CelebA latent 128 (the paper's +LT rows); its stand-alone CW² / CWAE / AE rows use 64 (--latent 64).
- 28x28 MLPs: 256 units with BatchNorm, batch 128, lr 1e-3, as the authors' code and its MNIST script
  (gmum/lcw-generator); the paper's text says 200 units and no BatchNorm. CW²'s reconstruction term
  compares the batch of reconstructions with the batch of originals as two distributions, so nothing
  ties a reconstruction to its own original except training, and the paper's networks learn that
  slowly: measured on mnist5k, cw2, lambda 1, seed 0 (reconstruction error = mean per-image sum of
  squared errors of the 1,000 held-out digits; domain FID of D(z) / D(LG(z')), 10,000 samples):
    200 units, no BatchNorm, batch 64, lr 2e-3, 50 epochs (the old default):  58.2, FID 29.0 / 33.2
    200 units, no BatchNorm, batch 128, lr 1e-3, 150 epochs:                  70.9, FID 31.9 / 30.1
    256 units, BatchNorm,    batch 128, lr 1e-3,  50 epochs:                  68.9, FID 33.4 / 29.9
    256 units, BatchNorm,    batch 128, lr 1e-3, 150 epochs:                  25.9, FID 14.1 /  8.2
    256 units, BatchNorm,    batch 128, lr 1e-3, 250 epochs:                  21.0, FID 10.2 /  6.2
  (batch 64 at 50 epochs: 75.6, FID 40.6 / 29.9; gamma 0.05 instead of auto: 79.8, FID 42.7 / 43.8.)
  Below about 100 epochs the reconstructions of held-out digits are often another digit or a speckled
  cloud; with BatchNorm and 150+ epochs they keep the digit. 200 epochs (6,200 steps) keeps the demo
  near 5 minutes on 2 CPU cores; AE and CWAE get the same batch, lr and epochs so the comparison
  (training.compare) gives every first stage the same number of steps.
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
    "small": {"ae": dict(latent=8, batch_size=128, lr=1e-3, lam=0.0),
              "cwae": dict(latent=8, batch_size=128, lr=1e-3, lam=1.0),
              "cw2": dict(latent=8, batch_size=128, lr=1e-3, lam=1.0)},
    "celeba": {"ae": dict(latent=128, batch_size=256, lr=1e-3, lam=0.0),
               "cwae": dict(latent=128, batch_size=256, lr=5e-4, lam=5.0),
               "cw2": dict(latent=128, batch_size=256, lr=5e-4, lam=0.2)},
}
# (data, objective) -> values that differ from the family's row (see the module docstring)
OVERRIDES = {("fmnist", "cwae"): dict(lam=10.0),
             **{("stacked-mnist5k", objective): dict(latent=24) for objective in ("ae", "cwae", "cw2")}}
EPOCHS = {"mnist5k": 200, "stacked-mnist5k": 200, "mnist": 50, "fmnist": 50, "celeba": 30}
LATENT_EPOCHS = {"mnist5k": 100, "stacked-mnist5k": 100, "mnist": 50, "fmnist": 50, "celeba": 30}
LATENT = {"small": dict(noise=8, batch_size=256, lr=1e-3), "celeba": dict(noise=32, batch_size=256, lr=1e-3)}
NOISE = {"stacked-mnist5k": 24}  # data -> noise dimension where it differs from the family's (LATENT)
STAGE_END_FID = 10000  # generated images of the domain FID at the end of every stage (--stage-end-fid)


def family(shape) -> str:
    """"celeba" for 3x64x64 images (the conv networks), "small" for everything else (the MLPs)."""
    return "celeba" if tuple(shape) == (3, 64, 64) else "small"


def stage1(data: str, shape, objective: str) -> dict:
    """Defaults for stage 1: latent, batch_size, lr, lam, epochs."""
    return {**STAGE1[family(shape)][objective], "epochs": EPOCHS.get(data, 30), **OVERRIDES.get((data, objective), {})}


def noise(data: str, shape) -> int:
    """The noise dimension of LG and of the data-space generators."""
    return NOISE.get(data, LATENT[family(shape)]["noise"])


def stage2(data: str, shape) -> dict:
    """Defaults for stage 2: noise, batch_size, lr, epochs."""
    return dict(LATENT[family(shape)], noise=noise(data, shape), epochs=LATENT_EPOCHS.get(data, 30))
