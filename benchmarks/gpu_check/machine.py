"""What the kit ran on: device, driver, versions, cores, commit (kept in meta.json by the build step)."""
import os
import platform
import subprocess

import torch

import lcw_fast
from lcw_fast import ops

from .. import providers
from ..run import _triton_version, device_name, git_commit, slug


def _nvidia_smi(field: str) -> str:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({type(exc).__name__})"
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"


def describe(rehearse: bool) -> dict:
    """Device name and slug, driver, torch / triton / CUDA / Python versions, cores, commit."""
    dev = torch.device("cpu" if rehearse else "cuda")
    name = device_name(dev)
    commit, dirty = git_commit()  # LCW_FAST_GIT_COMMIT on device copies without .git
    info = {"device": name, "device_slug": slug(name), "rehearsal": rehearse, "torch": torch.__version__,
            "triton": _triton_version(), "cuda": torch.version.cuda, "keops": providers.keops_version(),
            "python": platform.python_version(), "cores": os.cpu_count(), "lcw_fast": lcw_fast.__version__,
            "extension": ops.has_extension(), "cuda_kernels": ops.has_cuda_kernels(),
            "git_commit": commit, "git_dirty": dirty}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(driver=_nvidia_smi("driver_version"), sm_count=props.multi_processor_count,
                    capability=f"{props.major}.{props.minor}", memory_bytes=props.total_memory)
    return info
