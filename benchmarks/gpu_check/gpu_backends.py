"""The two GPU backends as the kit drives them: op namespaces, the device, why one cannot run.

In a rehearsal (no GPU) the Triton kernels run on CPU tensors under TRITON_INTERPRET=1, CUDA is
recorded as skipped, and the C++ CPU kernels stand in for it under the same lcw_fast:: op names,
so the code that checks the `lcw_fast` namespace runs too.
"""
from typing import List, NamedTuple, Optional, Tuple

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


class Pinned(NamedTuple):
    """One autotuned kernel as pin_first_configs left it."""
    name: str           # module.attribute where it was found
    configs: int        # configs in its table
    launches: List[int]  # configs kept at each prune (each new autotune key): all 1 when pinned


def autotuners() -> List[Tuple[str, "triton.runtime.autotuner.Autotuner"]]:
    """(module.attribute, Autotuner) of every autotuned Triton kernel in lcw_fast: each submodule is
    imported and its globals searched (through Heuristics and other wrappers), no module named here."""
    import importlib
    import pkgutil

    from triton.runtime.autotuner import Autotuner

    import lcw_fast

    found, seen = [], set()
    for info in pkgutil.walk_packages(lcw_fast.__path__, "lcw_fast."):
        module = importlib.import_module(info.name)
        for attr, obj in vars(module).items():
            for _ in range(4):  # Heuristics -> Autotuner -> JITFunction -> function
                if isinstance(obj, Autotuner) and id(obj) not in seen:
                    seen.add(id(obj))
                    found.append((f"{info.name}.{attr}", obj))
                obj = getattr(obj, "fn", None)
    return found


def pin_first_configs() -> List[Pinned]:
    """Every autotuned Triton kernel of lcw_fast keeps, at each launch, only the first config its own
    pruning leaves: the table's first for that dtype, gradients and D (spill-free under triton 3.6 and
    3.8), and is never timed. One compile per specialisation instead of one per config plus a timing
    run is what makes a correctness pass over many D and dtypes fit the device budget (triton 3.6 times
    a kernel even when a single config is left; 3.8 does not). The benchmark step autotunes over all
    configs. Returns one Pinned per kernel; its `launches` fill in as the kernels run."""
    pinned = []
    for name, tuner in autotuners():
        record = Pinned(name, len(tuner.configs), [])
        prune = tuner.early_config_prune

        def first(configs, named_args, _prune=prune, _record=record, **kwargs):
            kept = list(_prune(configs, named_args, **kwargs) if _prune else configs)[:1]
            _record.launches.append(len(kept))
            return kept

        tuner.early_config_prune = first
        tuner._bench = lambda *args, config, **meta: [0.0, 0.0, 0.0]  # nothing to choose between: no timing
        pinned.append(record)
    return pinned


def pinning_fields(pinned: List[Pinned]) -> dict:
    """The fields of the correctness step's "autotune pinning" row."""
    return {"kernels": {p.name: {"configs": p.configs, "launches": len(p.launches),
                                 "max_kept": max(p.launches, default=1)} for p in pinned},
            "max_kept": max((k for p in pinned for k in p.launches), default=1)}


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
