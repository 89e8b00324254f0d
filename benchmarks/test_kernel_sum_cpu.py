"""Fused CPU kernels vs the materialising reference: forward + backward of the public functions.

    pytest benchmarks/test_kernel_sum_cpu.py [--threads 1] [--rounds 3] [--bench-json FILE]

Each case is one function at one shape, gradients with respect to every input, float32. Both backends
are timed by benchmarks.timing.measure (one warm-up call, then --rounds timed calls); the terminal
summary has one row per backend with the median, min and max ms and the speed-up of the fused kernels
(reference median / cpu median), and --bench-json writes those rows to FILE.
Targets (2-core CI machine): >= 2x at n=4096, D=8; not slower at n=1024, D=784.
"""
import pytest
import torch

import lcw_fast
from benchmarks.timing import measure

SHAPES = [(4096, 8), (1024, 784)]
GAMMA = 0.5
BACKENDS = ("reference", "cpu")


def _loss(fn, backend, x, y):
    if fn == "cw_distance":
        return lcw_fast.cw_distance(x, y, GAMMA, backend=backend)
    return lcw_fast.cw_normality(x, backend=backend)


@pytest.mark.parametrize("fn", ["cw_distance", "cw_normality"])
@pytest.mark.parametrize("n, dim", SHAPES, ids=[f"n{n}-D{d}" for n, d in SHAPES])
def test_fwd_bwd(bench_rows, request, n, dim, fn):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=generator, requires_grad=True)
    y = (0.5 + torch.randn(n, dim, generator=generator)).requires_grad_(True)
    inputs = (x, y) if fn == "cw_distance" else (x,)
    rounds = request.config.getoption("--rounds")
    medians = {}
    for backend in BACKENDS:
        grads = []
        stats = measure(lambda: grads.append(torch.autograd.grad(_loss(fn, backend, x, y), inputs)),
                        torch.device("cpu"), repeats=rounds, warmup=1, memory=False).stats
        assert all(torch.isfinite(g).all() for g in grads[-1])
        medians[backend] = stats["median_ms"]
        bench_rows.append({"case": f"{fn} fwd+bwd n={n} D={dim} float32", "backend": backend, "rounds": rounds,
                           "threads": torch.get_num_threads(), **stats,
                           "speedup_vs_reference": medians["reference"] / stats["median_ms"]})
