"""Step 1: build the extension in place for sm_90, then record the machine (row "machine", meta.json).

The build is `pip install -e . --no-build-isolation --no-deps` with LCW_FAST_REQUIRE_CUDA=1 (setup.py
fails when nvcc cannot be found), TORCH_CUDA_ARCH_LIST=9.0 and MAX_JOBS = the machine's cores; the
step fails too when the built extension has no CUDA kernels. A rehearsal does not compile (no CUDA
build on a machine without a GPU): it records the build as skipped and uses the extension in the tree.
lcw_fast is imported only after the build, so this process sees the new extension.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

from . import meta, rows

STEP = "build"
ROOT = Path(__file__).resolve().parents[2]


def _pip_build(budget_s: float) -> tuple:
    """(exit code, seconds, reason) of the in-place build; its output goes to this step's log."""
    env = dict(os.environ, LCW_FAST_REQUIRE_CUDA="1", TORCH_CUDA_ARCH_LIST="9.0", MAX_JOBS=str(os.cpu_count() or 1))
    env.pop("LCW_FAST_CPU_ONLY", None)
    cmd = [sys.executable, "-m", "pip", "install", "-e", ".", "--no-build-isolation", "--no-deps"]
    print("+ " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    try:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=budget_s).returncode
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - t0, f"pip did not finish within {budget_s:.0f} s"
    return rc, time.monotonic() - t0, "" if rc == 0 else f"pip exited with {rc} (see build.log)"


def run(out: Path, budget_s: float, rehearse: bool) -> int:
    if rehearse:
        status = "skipped"
        rows.append(out, STEP, "build", status,
                    reason="rehearsal: no CUDA build on a machine without a GPU; the extension in the tree is used")
    else:
        rc, seconds, reason = _pip_build(budget_s)
        from lcw_fast import ops  # after the build

        cuda = ops.has_cuda_kernels()
        if rc == 0 and not cuda:
            reason = f"built, but without CUDA kernels ({ops.EXTENSION_ERROR or 'no CUDA dispatch key'})"
        status = "ok" if rc == 0 and cuda else ("timeout" if rc is None else "failed")
        rows.append(out, STEP, "build", status, rc=rc, seconds=round(seconds, 1), cuda_kernels=cuda, reason=reason,
                    max_jobs=os.cpu_count(), arch="9.0")
    from . import machine  # imports lcw_fast: only now that the extension is built

    info = machine.describe(rehearse)
    rows.append(out, STEP, "machine", "ok", **info)
    meta.update(out, info)
    return 0 if status in ("ok", "skipped") else 1
