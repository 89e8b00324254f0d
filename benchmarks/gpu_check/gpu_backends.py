"""The two GPU backends as the kit drives them: op namespaces, the device, why one cannot run.

In a rehearsal (no GPU) the Triton kernels run on CPU tensors under TRITON_INTERPRET=1, CUDA is
recorded as skipped, and the C++ CPU kernels stand in for it under the same lcw_fast:: op names,
so the code that checks the `lcw_fast` namespace runs too.
"""
from typing import List, NamedTuple, Optional

import torch

from lcw_fast import backends, ops


class GpuBackend(NamedTuple):
    label: str          # "triton", "cuda" or, in a rehearsal, "cpu"
    namespace: str      # torch.ops.<namespace>
    device: torch.device
    unavailable: Optional[str]  # why it cannot run here (None: it can)


def device(rehearse: bool) -> torch.device:
    """The device the kit runs on: CUDA, or the CPU in a rehearsal (an error without either)."""
    if rehearse:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device is visible: run with --rehearse on a machine without a GPU")
    return torch.device("cuda")


def _triton_reason(rehearse: bool) -> Optional[str]:
    if not backends.has_triton():
        return "triton is not installed"
    if rehearse and not backends.triton_interpreted():
        return "a rehearsal runs Triton only under TRITON_INTERPRET=1"
    return None


def _cuda_reason(rehearse: bool) -> Optional[str]:
    if rehearse:
        return "rehearsal: no CUDA device"
    if not ops.has_extension():
        return f"the C++ extension does not load: {ops.EXTENSION_ERROR}"
    if not ops.has_cuda_kernels():
        return "the extension was built without its CUDA kernels"
    return None


def pin_first_configs() -> None:
    """Every autotuned Triton kernel keeps only its first config (the sm_90 spill-free one): one
    compile per specialisation instead of one per config, which is what makes a correctness pass
    over many D and dtypes fit the device budget. The benchmark step autotunes over all configs."""
    from triton.runtime.autotuner import Autotuner

    from lcw_fast import triton_kernel_sum

    for obj in vars(triton_kernel_sum).values():
        if isinstance(obj, Autotuner):
            obj.configs = obj.configs[:1]


def gpu_backends(rehearse: bool) -> List[GpuBackend]:
    """Triton, CUDA and (rehearsal only) the CPU stand-in, each with its reason if it cannot run."""
    dev = device(rehearse)
    found = [GpuBackend("triton", "lcw_fast_triton", dev, _triton_reason(rehearse)),
             GpuBackend("cuda", "lcw_fast", torch.device("cuda"), _cuda_reason(rehearse))]
    if rehearse:
        found.append(GpuBackend("cpu", "lcw_fast", dev, None if ops.has_extension() else
                                f"the C++ extension does not load: {ops.EXTENSION_ERROR}"))
    if found[0].unavailable is None:
        from lcw_fast import triton_kernel_sum  # noqa: F401  (registers torch.ops.lcw_fast_triton)
    return found
