"""Cramer-Wold distances over a global batch split across the processes of a torch.distributed group.

    import torch.distributed as dist, lcw_fast.distributed as lcwd
    dist.init_process_group("nccl")                     # or "gloo" on the CPU; torchrun sets the rank
    d = lcwd.cw_distance(x_local, y_local, gamma=0.01)  # the cw_distance of cat over ranks of x, y
    torch.log(d).backward()                             # local rows' gradients; all-reduce (sum) the
                                                        # parameter gradients, as DDP does, but SUM them

Every rank gets the value of `lcw_fast.cw_distance` / `cw_normality` on the concatenation of all
ranks' samples, and gradients with respect to its own rows such that the SUM over ranks of the
parameter gradients is the gradient of the global value (DDP averages: scale by the world size, or
all-reduce with SUM). The other ranks' samples are gathered without gradient and each rank sums its
own rows against all columns, O(N^2 / K) pairs per rank for K ranks; the partial sums are
all-reduced in float64 before they are combined. Local sizes may differ between ranks (the
dimension D may not); every kernel sum goes through `lcw_fast.kernel_sum`, so every backend works.
Every rank of `group` must call these functions in the same order (they are collectives).
Import torch._dynamo before init_process_group (torch.optim imports it at its first optimizer): imported
after it, it keeps the default group alive past destroy_process_group (seen with torch 2.14), and on gloo
the group's leftover threads can abort the process as it exits ("terminate called without an active
exception") after all its work is done.
"""
from typing import Optional, Union

import torch
import torch.distributed as dist

from .distance import _sample_gamma, kernel_sum, normality_gamma
from .reference import C0
from .validation import check_gamma, check_pair, check_sample


def all_sum(local: torch.Tensor, group=None) -> torch.Tensor:
    """The elementwise sum over the ranks of `group` of `local`, differentiable w.r.t. this rank's `local`
    only (the gradient of a rank's share of a global sum is that share's gradient)."""
    total = local.detach().clone()
    dist.all_reduce(total, group=group)
    return local + (total - local.detach())


def _gather(t: torch.Tensor, sizes: torch.Tensor, group) -> torch.Tensor:
    """cat over ranks of each rank's (sizes[r], D) tensor `t`, without gradient (padded to one shape
    for all_gather, which needs equal shapes on every rank)."""
    longest = int(sizes.max())
    padded = t.detach().new_zeros((longest, t.shape[1]))
    padded[: t.shape[0]] = t.detach()
    parts = [torch.empty_like(padded) for _ in range(len(sizes))]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([p[: int(n)] for p, n in zip(parts, sizes.tolist())])


def _sizes(samples, group):
    """(K, len(samples)) table of every rank's row counts; raises the same ValueError on every rank when
    the dimensions differ (checked before any gather: gloo aborts on mismatched shapes)."""
    device = samples[0].device
    mine = torch.tensor([s.shape[0] for s in samples] + [samples[0].shape[1]], device=device, dtype=torch.int64)
    rows = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(rows, mine, group=group)
    table = torch.stack(rows).cpu()
    if (table[:, -1] != table[0, -1]).any():
        raise ValueError(f"every rank's samples must have the same dimension D, got D = {table[:, -1].tolist()} "
                         "by rank")
    return table[:, :-1]


def _self_sum(x: torch.Tensor, x_all: torch.Tensor, **kw) -> torch.Tensor:
    """This rank's rows of sum_ij k(|x_i - x_j|^2) over the global sample, with the gradient of the whole
    symmetric sum w.r.t. the local rows: each pair (i, j) enters as row i and as column j, and the
    columns here are constants, so the local rows' gradient counts twice."""
    rows = kernel_sum(x, x_all, **kw)
    return 2.0 * rows - rows.detach()


def cw_distance(x_local: torch.Tensor, y_local: torch.Tensor, gamma: Union[float, str] = "silverman",
                group=None, backend: str = "auto", precision: str = "default") -> torch.Tensor:
    """lcw_fast.cw_distance(cat_r x_r, cat_r y_r, gamma) on every rank of `group` (None: the default group).

    x_local: (n_r, D), y_local: (m_r, D) this rank's rows. gamma "silverman" is computed from the global
    samples. Gradients: this rank's rows' share (sum the parameter gradients over ranks).
    """
    check_pair(x_local, y_local, ("x_local", "y_local"))
    sizes = _sizes((x_local, y_local), group)
    x_all, y_all = _gather(x_local, sizes[:, 0], group), _gather(y_local, sizes[:, 1], group)
    if isinstance(gamma, str) and gamma == "silverman":
        gamma = _sample_gamma(x_all, y_all)
    kw = dict(gamma=check_gamma(gamma), backend=backend, precision=precision)
    # the cross sum is summed by x rows (gradient w.r.t. x) and again by y rows (gradient w.r.t. y)
    by_x, by_y = kernel_sum(x_local, y_all, **kw), kernel_sum(y_local, x_all, **kw)
    cross = by_x + (by_y - by_y.detach())
    sums = all_sum(torch.stack([_self_sum(x_local, x_all, **kw), _self_sum(y_local, y_all, **kw), cross]), group)
    n, m = len(x_all), len(y_all)
    total = sums[0] / (n * n) + sums[1] / (m * m) - 2.0 * sums[2] / (n * m)
    return (C0 * total).to(torch.promote_types(x_local.dtype, y_local.dtype))


def cw_normality(z_local: torch.Tensor, gamma: Optional[float] = None, group=None, backend: str = "auto",
                 precision: str = "default") -> torch.Tensor:
    """lcw_fast.cw_normality(cat_r z_r, gamma) on every rank of `group` (None: the default group).

    z_local: (n_r, D) this rank's rows; gamma defaults to normality_gamma(N) of the global N.
    """
    check_sample("z_local", z_local)
    sizes = _sizes((z_local,), group)
    z_all = _gather(z_local, sizes[:, 0], group)
    n, dim = z_all.shape
    gamma = normality_gamma(n) if gamma is None else check_gamma(gamma)
    to_prior = torch.rsqrt(gamma + 0.5 + z_local.double().square().sum(1) / (2 * dim - 3)).sum()
    pairs = _self_sum(z_local, z_all, gamma=gamma, backend=backend, precision=precision)
    sums = all_sum(torch.stack([pairs, to_prior]), group)
    return (C0 * (sums[0] / (n * n) + (1.0 + gamma) ** -0.5 - 2.0 * sums[1] / n)).to(z_local.dtype)
