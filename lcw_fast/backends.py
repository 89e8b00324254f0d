"""Backend selection: which implementation computes the O(n^2) kernel sums for a given tensor.

TABLE holds one BackendSpec per implementation, the one contract `resolve`, the benchmarks
(benchmarks/providers.py) and the tests (tests/test_ops.py) read:

  "cpu"       fused C++/OpenMP kernels (torch.ops.lcw_fast, CPU tensors)
  "cuda"      fused C++/CUDA kernels (torch.ops.lcw_fast, CUDA tensors)
  "triton"    fused Triton kernels (torch.ops.lcw_fast_triton; CUDA tensors, or CPU tensors
              under TRITON_INTERPRET=1)
  "reference" the materialising pure-PyTorch code path of lcw_fast.reference (memory O(n*m))
  "auto"      the fastest available one for the tensor's device and shape

A fused backend's `ops()` are the registered ops (lcw_fast.ops.ALL_OPS) it has kernels for; every
one of them meets the contract of csrc/lcw_fast.cpp, including the non-finite one (a NaN or Inf
anywhere in the inputs: NaN value, every gradient entry NaN). Where a backend lacks the one-pass
ops, `Backend` falls back to the value ops and their recomputing backward.
"""
import os
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch

from . import ops, reference

BACKENDS = ("auto", "cpu", "cuda", "triton", "reference")


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def has_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _extension_missing(device_type: str) -> Optional[str]:
    if not ops.has_extension():
        return (f"the C++ extension failed to load ({ops.EXTENSION_ERROR}); "
                "reinstall with `pip install -e . --no-build-isolation`")
    if device_type == "cuda" and not ops.has_cuda_kernels():
        return "the extension was built without CUDA (LCW_FAST_CPU_ONLY or no nvcc)"
    return None


def _triton_missing() -> Optional[str]:
    return None if has_triton() else "triton is not installed"


def _triton_namespace() -> str:
    from . import triton_kernel_sum  # noqa: F401  (registers torch.ops.lcw_fast_triton)

    return "lcw_fast_triton"


@dataclass(frozen=True)
class BackendSpec:
    """One implementation: where it runs, why it cannot here, and which registered ops it has.

    name: the `backend=` argument.
    devices(): the device types ("cpu", "cuda") whose tensors it takes.
    unavailable(): None when it can run in this process, else the reason.
    namespace(): the torch.ops namespace of its ops (imports it on first use); None for the reference.
    ops(): names (of lcw_fast.ops.ALL_OPS) of the registered ops it has kernels for.
    fused: True for the fused kernels (memory O((n + m) D)), whose inputs the public API centres.
    """

    name: str
    devices: Callable[[], Tuple[str, ...]]
    unavailable: Callable[[], Optional[str]]
    namespace: Callable[[], Optional[str]]
    ops: Callable[[], Tuple[str, ...]]
    fused: bool

    def available_on(self, device_type: str) -> Optional[str]:
        """None when the backend can run on tensors of `device_type`, else the reason."""
        if device_type not in self.devices():
            hint = " (or TRITON_INTERPRET=1 for CPU tensors)" if self.name == "triton" else ""
            return (f"backend={self.name!r} needs {' or '.join(self.devices())} tensors{hint}, "
                    f"got tensors on {device_type}")
        return self.unavailable()


TABLE = {
    "cpu": BackendSpec("cpu", lambda: ("cpu",), lambda: _extension_missing("cpu"), lambda: "lcw_fast",
                       lambda: ops.EXTENSION_OPS["CPU"], True),
    "cuda": BackendSpec("cuda", lambda: ("cuda",), lambda: _extension_missing("cuda"), lambda: "lcw_fast",
                        lambda: ops.EXTENSION_OPS["CUDA"], True),
    "triton": BackendSpec("triton", lambda: ("cuda", "cpu") if triton_interpreted() else ("cuda",), _triton_missing,
                          _triton_namespace, lambda: ops.defined_ops(_triton_namespace()), True),
    "reference": BackendSpec("reference", lambda: ("cpu", "cuda"), lambda: None, lambda: None, lambda: (), False),
}
FUSED = tuple(name for name, spec in TABLE.items() if spec.fused)


def available(device_type: str) -> Tuple[str, ...]:
    """Names of the backends that run on `device_type` tensors in this process, in TABLE order."""
    return tuple(name for name, spec in TABLE.items() if spec.available_on(device_type) is None)


def _wants_grad(t: torch.Tensor) -> bool:
    return t.requires_grad and torch.is_grad_enabled()


@dataclass(frozen=True)
class Backend:
    """Forward kernel sums of one implementation; both return 0-dim float64 and support autograd.

    self_sum(x, gamma, precision)     = sum_ij k(|x_i - x_j|^2)
    cross_sum(x, y, gamma, precision) = sum_ij k(|x_i - y_j|^2)
    When an input requires grad (and grad mode is on) the sums come from the one-pass ops, where
    the backend has them: value and gradients from one visit of each pair, the backward only
    scales the saved gradients. Otherwise the value-only ops (a backward then recomputes the pairs).
    fused: see BackendSpec.
    """

    name: str
    lib: object  # the torch.ops namespace, None for the reference
    has: frozenset
    fused: bool

    def self_sum(self, x, gamma, precision):
        if self.lib is None:
            return reference.kernel_sum(x, x, gamma, exact=False).double()
        if _wants_grad(x) and "kernel_sum_self_value_grad" in self.has:
            return self.lib.kernel_sum_self_value_grad(x, gamma, precision)[0]
        return self.lib.kernel_sum_self(x, gamma, precision)

    def cross_sum(self, x, y, gamma, precision):
        if self.lib is None:
            return reference.kernel_sum(x, y, gamma, exact=False).double()
        gx, gy = _wants_grad(x), _wants_grad(y)
        if gx and gy and "kernel_sum_value_grad_pair" in self.has:
            return self.lib.kernel_sum_value_grad_pair(x, y, gamma, precision)[0]
        if gx != gy and "kernel_sum_value_grad" in self.has:
            a, b = (x, y) if gx else (y, x)  # the sum is symmetric: the op's x is the input needing grad
            return self.lib.kernel_sum_value_grad(a, b, gamma, precision)[0]
        return self.lib.kernel_sum(x, y, gamma, precision)


# Inclusive ranges of D where the C++/CUDA kernels measured faster than Triton (fwd+bwd, H100).
# Unmeasured until the GPU benchmark run fills it in: until then "auto" keeps Triton on CUDA.
CUDA_FASTER_DIMS: tuple = ()


def _cuda_measured_faster(dim: int) -> bool:
    return any(lo <= dim <= hi for lo, hi in CUDA_FASTER_DIMS)


def _auto_name(device: torch.device, dim: int) -> str:
    if device.type == "cpu":
        return "cpu" if ops.has_extension() else "reference"
    if device.type == "cuda":
        cuda = ops.has_cuda_kernels()
        if has_triton() and not (cuda and _cuda_measured_faster(dim)):
            return "triton"
        return "cuda" if cuda else "reference"
    return "reference"


def resolve(backend: str, x: torch.Tensor) -> Backend:
    """The Backend that computes kernel sums for tensors like `x` (an (n, D) sample)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    name = _auto_name(x.device, x.shape[1]) if backend == "auto" else backend
    spec = TABLE[name]
    if x.device.type not in spec.devices():
        raise ValueError(spec.available_on(x.device.type))
    why = spec.unavailable()
    if why is not None:
        raise RuntimeError(f"backend={name!r} is not available: {why}")
    ns = spec.namespace()
    return Backend(name, None if ns is None else getattr(torch.ops, ns), frozenset(spec.ops()), spec.fused)
