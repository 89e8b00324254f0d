"""The implementations benchmarked side by side, each behind the same two calls.

  reference        lcw_fast with backend="reference": the paper's code path, torch.cdist(...)**2
                   materialised and then the formula, float32 at PyTorch's default precision
  cpu, cuda, triton  lcw_fast's fused backends, each in three modes:
                   "<backend>"       float32 inputs, precision="default" (float32-accurate)
                   "<backend>-fast"  float32 inputs, precision="fast" (TF32 Gram on GPUs)
                   "<backend>-bf16"  bfloat16 inputs, precision="default"
  keops            pykeops LazyTensor reduction of (gamma + D_ij / c).rsqrt(), float32, when
                   pykeops imports (it compiles each formula on first use: the warm-up)

Every provider is called through `normality(z, gamma)` and `distance(x, y, gamma)`; the lcw_fast ones
go through the public cw_normality / cw_distance with backend=..., so every fused backend of
lcw_fast.backends.TABLE is benchmarked. `check(device)` says why a provider cannot run on a device
(None when it can): the backend table decides, then a tiny forward and backward call proves the
kernels are really there (a backend can be listed while its kernels are still missing).
"""
import functools
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Callable, List, Optional, Sequence

import torch

import lcw_fast
from lcw_fast import backends

from .timing import describe_error

FUSED_BACKENDS = backends.FUSED
MODES = ("default", "fast", "bf16")
_PROBE_SHAPE = (5, 3)


@dataclass(frozen=True)
class Provider:
    """One implementation in one mode.

    normality(z, gamma): z (n, D) -> 0-dim tensor, cw_normality of z
    distance(x, y, gamma): x (n, D), y (m, D) -> 0-dim tensor, cw_distance of x and y
    check(device) -> None when the provider can run on `device`, else the reason it cannot.
    """

    name: str
    backend: str
    mode: str
    normality: Callable
    distance: Callable
    check: Callable[[torch.device], Optional[str]]

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.mode == "bf16" else torch.float32


def _probe(provider: Provider, device: torch.device) -> Optional[str]:
    """Runs both calls forward and backward on a tiny input; the error, if any, is the reason."""
    z = torch.randn(*_PROBE_SHAPE, device=device, dtype=provider.dtype, requires_grad=True)
    x = torch.randn(*_PROBE_SHAPE, device=device, dtype=provider.dtype)
    try:
        loss = provider.normality(z, 0.5) + provider.distance(x, z, 0.5)
        torch.autograd.grad(loss, z)
    except Exception as exc:  # any failure means "not available here"; the reason is recorded
        return describe_error(exc)
    return None


def _lcw_check(backend: str, mode: str, provider_name: str) -> Callable[[torch.device], Optional[str]]:
    def check(device: torch.device) -> Optional[str]:
        if backend == "triton" and backends.triton_interpreted():
            return "Triton runs under its interpreter (TRITON_INTERPRET=1): timings would be meaningless"
        why = backends.TABLE[backend].available_on(device.type)
        if why is not None:
            return why
        if device.type == "cpu" and mode != "default":
            return f"mode {mode!r} computes the same float32 sums as 'default' on the CPU"
        return _probe(PROVIDERS[provider_name], device)

    return check


def _lcw_provider(backend: str, mode: str) -> Provider:
    name = backend if mode == "default" else f"{backend}-{mode}"
    precision = "fast" if mode == "fast" else "default"
    kwargs = dict(backend=backend, precision=precision)
    return Provider(
        name, backend, mode,
        normality=lambda z, gamma: lcw_fast.cw_normality(z, gamma, **kwargs),
        distance=lambda x, y, gamma: lcw_fast.cw_distance(x, y, gamma, **kwargs),
        check=_lcw_check(backend, mode, name),
    )


def _keops_sum(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """sum_ij (gamma + |x_i - y_j|^2 / c)^(-1/2) as a KeOps reduction over j, then a sum over i."""
    from pykeops.torch import LazyTensor

    c = 2 * x.shape[1] - 3
    d = LazyTensor(x[:, None, :]).sqdist(LazyTensor(y[None, :, :]))
    return (gamma + d / c).rsqrt().sum(dim=1).sum()


def _keops_normality(z: torch.Tensor, gamma: float) -> torch.Tensor:
    """cw_normality with the pair sum by KeOps (same formula as lcw_fast.cw_normality)."""
    n, dim = z.shape
    to_prior = torch.rsqrt(gamma + 0.5 + z.square().sum(1) / (2 * dim - 3)).mean()
    return lcw_fast.C0 * (_keops_sum(z, z, gamma) / n**2 + (1.0 + gamma) ** -0.5 - 2.0 * to_prior)


def _keops_distance(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """cw_distance with the three pair sums by KeOps (same formula as lcw_fast.cw_distance)."""
    n, m = x.shape[0], y.shape[0]
    return lcw_fast.C0 * (_keops_sum(x, x, gamma) / n**2 + _keops_sum(y, y, gamma) / m**2
                          - 2.0 * _keops_sum(x, y, gamma) / (n * m))


def _keops_check(device: torch.device) -> Optional[str]:
    try:
        import pykeops  # noqa: F401
    except ImportError as exc:
        return f"pykeops is not importable ({describe_error(exc)})"
    return _probe(PROVIDERS["keops"], device)


def _all_providers() -> dict:
    ref = Provider("reference", "reference", "default",
                   normality=functools.partial(lcw_fast.cw_normality, backend="reference"),
                   distance=functools.partial(lcw_fast.cw_distance, backend="reference"),
                   check=lambda device: None)  # plain PyTorch runs anywhere
    fused = [_lcw_provider(b, mode) for b in FUSED_BACKENDS for mode in MODES]
    keops = Provider("keops", "keops", "default", _keops_normality, _keops_distance, _keops_check)
    return {p.name: p for p in [ref, *fused, keops]}


PROVIDERS = _all_providers()


def select(patterns: Optional[Sequence[str]] = None) -> List[Provider]:
    """Providers whose names match any of the shell-style patterns (all when None), in a fixed order.

    "triton*" selects triton, triton-fast and triton-bf16; an unknown name raises ValueError.
    """
    if not patterns:
        return list(PROVIDERS.values())
    for pat in patterns:
        if not any(fnmatch(name, pat) for name in PROVIDERS):
            raise ValueError(f"--providers: {pat!r} matches none of {', '.join(PROVIDERS)}")
    return [p for name, p in PROVIDERS.items() if any(fnmatch(name, pat) for pat in patterns)]


def keops_version() -> Optional[str]:
    try:
        import pykeops
    except ImportError:
        return None
    return getattr(pykeops, "__version__", "unknown")

