"""Training of the paper's models on the lcw_fast losses: AE / CWAE / CW² autoencoders (stage 1) and
the Latent Trick generator LG (stage 2), with data, run folders, pictures and CLIs.

    python -m training.demo                          # the main job (mnist5k, CPU, a few minutes)
    python -m training.train --data mnist5k --objective cw2 --out runs/cw2
    python -m training.latent --ae runs/cw2          # stage 2 into runs/cw2/latent
    torchrun --nproc_per_node=2 -m training.train ...  # one global batch over 2 processes
    python -m training.sample runs/cw2/latent --n 64
    python -m training.evaluate runs/cw2/latent --fid domain --kid   # FID / KID through clean-fid
    python -m training.compare                       # the paper's Table 2 on mnist5k, 3 seeds
"""
