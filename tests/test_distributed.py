"""lcw_fast.distributed on 2 gloo ranks (CPU processes): values and gradients equal the one-process
ones on the concatenated samples, with unequal local sizes, a fixed and the Silverman bandwidth, and the
fused and reference backends; mismatched dimensions fail with the same clear error on every rank."""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lcw_fast
import lcw_fast.distributed as lcwd
from helpers import assert_close

SIZES = ((13, 5), (7, 9))  # (n_r, m_r) of rank 0 and rank 1


def _samples():
    gen = torch.Generator().manual_seed(3)
    n, m = sum(s[0] for s in SIZES), sum(s[1] for s in SIZES)
    return torch.randn(n, 6, generator=gen), torch.randn(m, 6, generator=gen) + 0.3


def _rows(rank: int, which: int) -> slice:
    start = sum(s[which] for s in SIZES[:rank])
    return slice(start, start + SIZES[rank][which])


def _values_and_grads(fn, x, y, z):
    x, y, z = (t.clone().requires_grad_() for t in (x, y, z))
    d, s = fn["distance"](x, y), fn["normality"](z)
    (torch.log(d) + 0.5 * torch.log(s)).backward()
    return d.detach(), s.detach(), x.grad, y.grad, z.grad


def _worker(rank: int, init: str, backend: str, gamma, out: str):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        x, y = _samples()
        fn = {"distance": lambda a, b: lcwd.cw_distance(a, b, gamma, backend=backend),
              "normality": lambda a: lcwd.cw_normality(a, backend=backend)}
        result = _values_and_grads(fn, x[_rows(rank, 0)], y[_rows(rank, 1)], x[_rows(rank, 0)])
        try:
            lcwd.cw_distance(torch.randn(3, 4 + rank), torch.randn(3, 4 + rank), 0.1)
            mismatch = None
        except ValueError as error:
            mismatch = str(error)
        torch.save({"result": result, "mismatch": mismatch}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("backend,gamma", [("cpu", 0.2), ("cpu", "silverman"), ("reference", 0.2)])
def test_two_ranks_equal_one_process(tmp_path, backend, gamma):
    mp.spawn(_worker, args=(f"file://{tmp_path}/init", backend, gamma, str(tmp_path)), nprocs=2)
    x, y = _samples()
    fn = {"distance": lambda a, b: lcw_fast.cw_distance(a, b, gamma, backend=backend),
          "normality": lambda a: lcw_fast.cw_normality(a, backend=backend)}
    d, s, gx, gy, gz = _values_and_grads(fn, x, y, x)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for rank, saved in enumerate(ranks):
        rd, rs, rgx, rgy, rgz = saved["result"]
        assert_close(rd, d, rtol=1e-5, name=f"rank {rank} cw_distance")
        assert_close(rs, s, rtol=1e-5, name=f"rank {rank} cw_normality")
        assert_close(rgx, gx[_rows(rank, 0)], rtol=1e-4, atol=1e-6, name=f"rank {rank} grad x")
        assert_close(rgy, gy[_rows(rank, 1)], rtol=1e-4, atol=1e-6, name=f"rank {rank} grad y")
        assert_close(rgz, gz[_rows(rank, 0)], rtol=1e-4, atol=1e-6, name=f"rank {rank} grad z")
        assert "same dimension D, got D = [4, 5]" in saved["mismatch"]
