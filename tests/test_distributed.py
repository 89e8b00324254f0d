"""lcw_fast.distributed on 2 gloo ranks (CPU processes): values and gradients equal the one-process
ones on the concatenated samples, with unequal local sizes, a fixed and the Silverman bandwidth, and the
fused and reference backends; mismatched dimensions fail with the same clear error on every rank; and
training.loop's chunked stage-2 steps on 2 ranks equal one process; and no process group outlives
destroy_process_group."""
import weakref

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


CASES = [("cpu", 0.2), ("cpu", "silverman"), ("reference", 0.2)]


def _case(rank: int, backend: str, gamma):
    x, y = _samples()
    fn = {"distance": lambda a, b: lcwd.cw_distance(a, b, gamma, backend=backend),
          "normality": lambda a: lcwd.cw_normality(a, backend=backend)}
    return _values_and_grads(fn, x[_rows(rank, 0)], y[_rows(rank, 1)], x[_rows(rank, 0)])


def _worker(rank: int, init: str, out: str):
    """Every check's rank-side computation, in one pair of processes (spawning them is the slow part); then
    whether the process group outlived destroy_process_group (see training.world.join_group)."""
    from training.world import World, join_group

    join_group("gloo", init_method=init, rank=rank, world_size=2)
    group = weakref.ref(dist.group.WORLD)
    try:
        results = {case: _case(rank, *case) for case in CASES}
        try:
            lcwd.cw_distance(torch.randn(3, 4 + rank), torch.randn(3, 4 + rank), 0.1)
            mismatch = None
        except ValueError as error:
            mismatch = str(error)
        latent = _latent_run(World(torch.device("cpu"), rank, 2), _latent_batches())
    finally:
        dist.destroy_process_group()
    torch.save({"results": results, "mismatch": mismatch, "latent": latent, "group_left": group() is not None},
               f"{out}/rank{rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_worker, args=(f"file://{out}/init", str(out)), nprocs=2)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("backend,gamma", CASES)
def test_two_ranks_equal_one_process(ranks, backend, gamma):
    x, y = _samples()
    fn = {"distance": lambda a, b: lcw_fast.cw_distance(a, b, gamma, backend=backend),
          "normality": lambda a: lcw_fast.cw_normality(a, backend=backend)}
    d, s, gx, gy, gz = _values_and_grads(fn, x, y, x)
    for rank, saved in enumerate(ranks):
        rd, rs, rgx, rgy, rgz = saved["results"][(backend, gamma)]
        assert_close(rd, d, rtol=1e-5, name=f"rank {rank} cw_distance")
        assert_close(rs, s, rtol=1e-5, name=f"rank {rank} cw_normality")
        assert_close(rgx, gx[_rows(rank, 0)], rtol=1e-4, atol=1e-6, name=f"rank {rank} grad x")
        assert_close(rgy, gy[_rows(rank, 1)], rtol=1e-4, atol=1e-6, name=f"rank {rank} grad y")
        assert_close(rgz, gz[_rows(rank, 0)], rtol=1e-4, atol=1e-6, name=f"rank {rank} grad z")


def test_destroy_process_group_leaves_no_group_behind(ranks):
    """Its gloo threads would outlive it and can abort the rank's exit (training.world.join_group)."""
    assert [saved["group_left"] for saved in ranks] == [False, False]


def test_mismatched_dimensions_fail_alike_on_every_rank(ranks):
    for saved in ranks:
        assert "every rank's samples must have the same dimension D, got D = [4, 5] by rank" in saved["mismatch"]


def _latent_run(world, batches, chunk_size=64, steps=10):
    """Stage 2 as training.latent builds it (noise drawn for the global batch, this rank's rows kept),
    float64, `steps` Adam steps; returns (losses, LG state)."""
    from training import loop, models
    from training.objectives import latent_trick_loss

    torch.manual_seed(0)
    lg = models.LatentGenerator(noise=4, latent=6, width=32, layers=2).double().train()
    group, shard = (world.group, world.shard) if world else (None, lambda t: t)
    stage = loop.Stage({"lg": lg}, lg,
                       inputs=lambda s, rng: (shard(torch.randn(len(batches[0]), 4, generator=rng, dtype=s.dtype)),),
                       forward=lambda z: (lg.net(z),), loss=lambda s, out: latent_trick_loss(out[0], s, 0.3, group),
                       validate=dict)
    optimizer = torch.optim.Adam(lg.parameters(), lr=1e-3)
    losses = []
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        losses.append(loop.train_step(stage, shard(batches[step]), loop.step_generator(0, step), chunk_size,
                                      world=world))
        optimizer.step()
        if world:
            world.share_buffers(lg)
    return torch.stack(losses), lg.state_dict()


def _latent_batches():
    gen = torch.Generator().manual_seed(5)
    return [torch.randn(256, 6, generator=gen, dtype=torch.float64) for _ in range(10)]


def test_two_rank_latent_steps_equal_one_process(ranks):
    """Chunks of 64 of each rank's 128 rows = chunks of 64 of the 256 rows in one process (the same ghost
    BatchNorm), so the training trajectories agree; the BatchNorm running statistics are rank 0's (two
    chunk updates per step instead of four) and are not compared."""
    losses, state = _latent_run(None, _latent_batches())
    for rank, saved in enumerate(ranks):
        rank_losses, rank_state = saved["latent"]
        assert_close(rank_losses, losses, rtol=1e-5, name=f"rank {rank} per-step losses")  # float32 losses
        for name, value in state.items():
            if "running" not in name and "num_batches" not in name:
                assert_close(rank_state[name], value, rtol=1e-5, atol=1e-6, name=f"rank {rank} {name}")
