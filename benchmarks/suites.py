"""What is measured: the workloads, the suites of sizes, and the grids (full, cpu, tiny).

Workloads (float32 unless the provider's mode is bf16; gamma is fixed per size so no call reads
data back to the host):
  normality  cw_normality(z), z ~ N(0, I) of shape (n, D), gradient w.r.t. z (the latent term of
             an LCW generator); gamma = normality_gamma(n)
  distance   cw_distance(x, y), x, y ~ U[0, 1)^D of shape (n, D) each (images as data), gradient
             w.r.t. y only (the generated sample); gamma = silverman_gamma(1/sqrt(12), n), the
             Silverman bandwidth of that distribution
Passes: "fwd" = one call with inputs that require grad (the graph is built, as in training);
"bwd" = torch.autograd.grad of one retained forward; "fwd+bwd" = both, one training step's work.

Suites: latent (normality, small D), data (distance, image D), scale (the largest n, for the
"largest n before OOM" question). Within a suite the headline D comes first and n ascends, so a
run cut short by its time budget has the headline sizes.
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch

import lcw_fast

WORKLOADS = ("normality", "distance")


def powers_of_two(lo: int, hi: int) -> Tuple[int, ...]:
    """(2^lo, ..., 2^hi)."""
    return tuple(2**k for k in range(lo, hi + 1))


@dataclass(frozen=True)
class Suite:
    """Sizes of one workload: every n of `ns` at every D of `dims` (m = n for distance)."""

    name: str
    workload: str
    dims: Tuple[int, ...]
    ns: Tuple[int, ...]


@dataclass(frozen=True)
class Grid:
    """A set of suites plus the sizes the summary table reports (headline D and n)."""

    suites: Dict[str, Tuple[Suite, ...]]
    headline_dims: Tuple[int, ...]
    headline_ns: Tuple[int, ...]
    ceiling_sizes: Optional[Tuple[int, int]] = None  # (matmul size, copy bytes); None: the device's


def _grid(latent, data, scale_ns, headline_dims, headline_ns, ceiling_sizes=None) -> Grid:
    """latent = (dims, ns) of normality, data = (dims, ns) of distance; scale runs both at their
    first (headline) D over scale_ns = (larger ns of normality, larger ns of distance), starting at
    the largest n of latent / data: a measured size from which the time of the next one is predicted
    (see --max-call-seconds), so an expensive size is skipped rather than run blind."""
    return Grid(
        suites={
            "latent": (Suite("latent", "normality", *latent),),
            "data": (Suite("data", "distance", *data),),
            "scale": (Suite("scale", "normality", latent[0][:1], (max(latent[1]),) + scale_ns[0]),
                      Suite("scale", "distance", data[0][:1], (max(data[1]),) + scale_ns[1])),
        },
        headline_dims=headline_dims,
        headline_ns=headline_ns,
        ceiling_sizes=ceiling_sizes,
    )


_ODD = (1000, 10007)
_LARGE = (65537,) + powers_of_two(17, 20)
GRIDS = {
    # the grid, for a GPU: n from 256 to 1M (powers of two plus odd sizes)
    "full": _grid(latent=((64, 8, 128), tuple(sorted(powers_of_two(8, 16) + _ODD))),
                  data=((12288, 784, 3072), tuple(sorted(powers_of_two(8, 16) + _ODD))),
                  scale_ns=(_LARGE, _LARGE),
                  headline_dims=(64, 12288), headline_ns=(4096, 16384, 65536)),
    # a few minutes on a small shared CPU
    "cpu": _grid(latent=((64, 8), (256, 512, 1000, 1024, 2048, 4096)),
                 data=((12288, 784), (256, 512, 1000, 1024)),
                 scale_ns=((8192, 16384), (2048, 4096)),
                 headline_dims=(64, 12288), headline_ns=(1024, 4096, 16384)),
    # seconds: the test suite's run of the whole harness
    "tiny": _grid(latent=((8,), (32, 33, 64)),
                  data=((16,), (32, 33)),
                  scale_ns=((128,), (64,)),
                  headline_dims=(8, 16), headline_ns=(32, 64, 128), ceiling_sizes=(256, 1 << 22)),
}


def gamma_for(workload: str, n: int) -> float:
    if workload == "normality":
        return lcw_fast.normality_gamma(n)
    return lcw_fast.silverman_gamma(1.0 / math.sqrt(12.0), n)


@dataclass
class Cell:
    """One provider's call of one workload at one size, ready to be timed pass by pass."""

    call: Callable[[], torch.Tensor]
    leaves: Tuple[torch.Tensor, ...]

    def runner(self, pass_name: str) -> Callable[[], object]:
        if pass_name == "fwd":
            return self.call
        if pass_name == "fwd+bwd":
            return lambda: torch.autograd.grad(self.call(), self.leaves)
        if pass_name == "bwd":
            out = self.call()  # one forward whose graph every timed backward reuses
            return lambda: torch.autograd.grad(out, self.leaves, retain_graph=True)
        raise ValueError(f"pass must be 'fwd', 'bwd' or 'fwd+bwd', got {pass_name!r}")


def make_cell(provider, workload: str, n: int, dim: int, device: torch.device, seed: int) -> Cell:
    """Fresh random inputs of the workload in the provider's dtype on `device`."""
    torch.manual_seed(seed)
    gamma = gamma_for(workload, n)
    if workload == "normality":
        z = torch.randn(n, dim, device=device).to(provider.dtype).requires_grad_()
        return Cell(lambda: provider.normality(z, gamma), (z,))
    if workload == "distance":
        x = torch.rand(n, dim, device=device).to(provider.dtype)
        y = torch.rand(n, dim, device=device).to(provider.dtype).requires_grad_()
        return Cell(lambda: provider.distance(x, y, gamma), (y,))
    raise ValueError(f"workload must be one of {WORKLOADS}, got {workload!r}")
