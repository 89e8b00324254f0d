"""Fused CPU kernels vs the materialising reference: forward + backward of the public functions.

    pytest benchmarks/test_kernel_sum_cpu.py [--threads 1]

Each group is one function at one shape; pytest-benchmark prints every column relative to the
fastest row of its group, so the reference row shows the speed-up of the fused kernels.
Targets (2-core CI machine): >= 2x at n=4096, D=8; not slower at n=1024, D=784.
"""
import pytest
import torch

import lcw_fast

SHAPES = [(4096, 8), (1024, 784)]
GAMMA = 0.5


def _loss(fn, backend, x, y):
    if fn == "cw_distance":
        return lcw_fast.cw_distance(x, y, GAMMA, backend=backend)
    return lcw_fast.cw_normality(x, backend=backend)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("fn", ["cw_distance", "cw_normality"])
@pytest.mark.parametrize("n, dim", SHAPES, ids=[f"n{n}-D{d}" for n, d in SHAPES])
def test_fwd_bwd(benchmark, n, dim, fn, backend):
    benchmark.group = f"{fn} fwd+bwd n={n} D={dim} float32"
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=generator, requires_grad=True)
    y = (0.5 + torch.randn(n, dim, generator=generator)).requires_grad_(True)
    inputs = (x, y) if fn == "cw_distance" else (x,)

    def step():
        return torch.autograd.grad(_loss(fn, backend, x, y), inputs)

    grads = benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    assert all(torch.isfinite(g).all() for g in grads)
