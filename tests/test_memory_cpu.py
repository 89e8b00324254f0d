"""Memory of the fused CPU kernels: fwd+bwd of cw_normality at n = 40,000, D = 16 stays O(n D).

A single n x n float32 matrix would take 6.4 GB; the fused path must grow the peak RSS by less than
256 MB. Measured in a fresh subprocess so that other tests' allocations do not count.
"""
import pytest

from helpers import HAS_PEAK_RESET, assert_peak_rss_growth_below

SETUP = """
import torch
import lcw_fast

z = torch.randn(40_000, 16, requires_grad=True)
lcw_fast.cw_normality(z[:300], backend="cpu").backward()  # warm up: thread pool, first allocations
z.grad = None
"""
MEASURED = """
value = lcw_fast.cw_normality(z, backend="cpu")
value.backward()
assert torch.isfinite(value) and torch.isfinite(z.grad).all()
"""


@pytest.mark.skipif(not HAS_PEAK_RESET, reason="needs Linux /proc to reset the peak RSS")
def test_cw_normality_fwd_bwd_at_40k_points_grows_peak_rss_by_less_than_256_mb():
    assert_peak_rss_growth_below(SETUP, MEASURED, 256 * 2**20)
