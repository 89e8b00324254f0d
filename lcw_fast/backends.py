"""Backend selection: which implementation computes the O(n^2) kernel sums for a given tensor.

  "cpu"       fused C++/OpenMP kernels (torch.ops.lcw_fast, CPU tensors)
  "cuda"      fused C++/CUDA kernels (torch.ops.lcw_fast, CUDA tensors)
  "triton"    fused Triton kernels (torch.ops.lcw_fast_triton; CUDA tensors, or CPU tensors
              under TRITON_INTERPRET=1)
  "reference" the materialising pure-PyTorch code path of lcw_fast.reference (memory O(n*m))
  "auto"      the fastest available one for the tensor's device and shape
"""
import os
from typing import Callable, NamedTuple

import torch

from . import ops, reference

BACKENDS = ("auto", "cpu", "cuda", "triton", "reference")


class Backend(NamedTuple):
    """Forward kernel sums of one implementation; both return 0-dim float64 and support autograd.

    self_sum(x, gamma, precision)     = sum_ij k(|x_i - x_j|^2)
    cross_sum(x, y, gamma, precision) = sum_ij k(|x_i - y_j|^2)
    fused: True for the fused kernels, which get their inputs centred (distances are translation
    invariant, and centring reduces cancellation in the Gram-based GPU kernels).
    """

    name: str
    self_sum: Callable
    cross_sum: Callable
    fused: bool


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def has_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _extension_backend(name: str) -> Backend:
    lib = torch.ops.lcw_fast
    return Backend(name, lib.kernel_sum_self, lib.kernel_sum, True)


def _triton_backend() -> Backend:
    from . import triton_kernel_sum  # noqa: F401  (registers torch.ops.lcw_fast_triton)

    lib = torch.ops.lcw_fast_triton
    return Backend("triton", lib.kernel_sum_self, lib.kernel_sum, True)


def _reference_backend() -> Backend:
    def self_sum(x, gamma, precision):
        return reference.kernel_sum(x, x, gamma, exact=False).double()

    def cross_sum(x, y, gamma, precision):
        return reference.kernel_sum(x, y, gamma, exact=False).double()

    return Backend("reference", self_sum, cross_sum, False)


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


def _unavailable(name: str, why: str) -> RuntimeError:
    return RuntimeError(f"backend={name!r} is not available: {why}")


def resolve(backend: str, x: torch.Tensor) -> Backend:
    """The Backend that computes kernel sums for tensors like `x` (an (n, D) sample)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    device = x.device
    name = _auto_name(device, x.shape[1]) if backend == "auto" else backend
    if name == "reference":
        return _reference_backend()
    if name in ("cpu", "cuda"):
        if device.type != name:
            raise ValueError(f"backend={name!r} needs {name} tensors, got tensors on {device}")
        if not ops.has_extension():
            raise _unavailable(name, f"the C++ extension failed to load ({ops.EXTENSION_ERROR}); "
                                     "reinstall with `pip install -e . --no-build-isolation`")
        if name == "cuda" and not ops.has_cuda_kernels():
            raise _unavailable(name, "the extension was built without CUDA (LCW_FAST_CPU_ONLY or no nvcc)")
        return _extension_backend(name)
    if not has_triton():
        raise _unavailable(name, "triton is not installed")
    if device.type != "cuda" and not triton_interpreted():
        raise ValueError(f"backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1), got tensors on {device}")
    return _triton_backend()
