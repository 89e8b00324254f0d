"""Memory of the fused CPU kernels: fwd+bwd of cw_normality at n = 40,000, D = 16 stays O(n D).

A single n x n float32 matrix would take 6.4 GB; the fused path must grow the peak RSS by less than
256 MB. Measured in a fresh subprocess so that other tests' allocations do not count.
"""
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent(
    """
    import torch
    import lcw_fast

    def status_kib(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    z = torch.randn(40_000, 16, requires_grad=True)
    lcw_fast.cw_normality(z[:300], backend="cpu").backward()  # warm up: thread pool, first allocations
    z.grad = None
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current RSS
    before = status_kib("VmHWM")
    value = lcw_fast.cw_normality(z, backend="cpu")
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(z.grad).all()
    print((status_kib("VmHWM") - before) * 1024)
    """
)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc to reset the peak RSS")
def test_cw_normality_fwd_bwd_at_40k_points_grows_peak_rss_by_less_than_256_mb():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    growth = int(out.stdout.strip().splitlines()[-1])
    print(f"peak RSS growth: {growth / 2**20:.1f} MiB")
    assert growth < 256 * 2**20, f"peak RSS grew by {growth / 2**20:.1f} MiB"
