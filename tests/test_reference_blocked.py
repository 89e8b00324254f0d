"""The bounded-memory float64 reference (lcw_fast.reference.*_blocked) against the materialising one.

Values and gradients agree with the exact cdist reference to 1e-12 relative at small sizes (tiles
smaller than the samples, ragged edges, n != m, n = 1, non-contiguous inputs); at n = m = 2048,
D = 3072, where the exact cdist backward would allocate n*m*D doubles (~100 GB), fwd+bwd grows the
peak RSS by less than 1.5 GB (fresh subprocess).
"""
import pytest
import torch

from lcw_fast import reference
from helpers import HAS_PEAK_RESET, assert_close, assert_peak_rss_growth_below

RTOL = 1e-12


def _both_grads(value, inputs):
    return torch.autograd.grad(value, inputs)


@pytest.mark.parametrize("n, m, dim, block", [(1, 1, 2, 4), (1, 9, 3, 4), (37, 23, 5, 8), (70, 130, 64, 32),
                                               (33, 17, 784, 16)])
@pytest.mark.parametrize("non_contiguous", [False, True])
def test_blocked_cw_distance_matches_exact_reference(n, m, dim, block, non_contiguous):
    x = torch.randn(n, dim, dtype=torch.float64)
    y = 0.3 + 1.2 * torch.randn(m, 2 * dim, dtype=torch.float64)[:, ::2] if non_contiguous else \
        0.3 + 1.2 * torch.randn(m, dim, dtype=torch.float64)
    x.requires_grad_(), y.requires_grad_()
    expected = reference.cw_distance(x, y, 0.4, exact=True)
    got = reference.cw_distance_blocked(x, y, 0.4, block=block)
    assert got.dtype == torch.float64
    assert abs(got.item() - expected.item()) <= RTOL * abs(expected.item()) + 1e-15
    for g, e, name in zip(_both_grads(got, (x, y)), _both_grads(expected, (x, y)), ("grad x", "grad y")):
        assert_close(g, e, rtol=RTOL, atol=RTOL * e.abs().max().item(), name=name)


@pytest.mark.parametrize("n, dim, block", [(1, 2, 4), (50, 3, 16), (129, 8, 64), (40, 300, 7)])
def test_blocked_cw_normality_matches_exact_reference(n, dim, block):
    z = (0.2 + torch.randn(n, dim, dtype=torch.float64)).requires_grad_()
    expected = reference.cw_normality(z, 0.3, exact=True)
    got = reference.cw_normality_blocked(z, 0.3, block=block)
    assert abs(got.item() - expected.item()) <= RTOL * abs(expected.item())
    (g,), (e,) = _both_grads(got, (z,)), _both_grads(expected, (z,))
    assert_close(g, e, rtol=RTOL, atol=RTOL * e.abs().max().item(), name="grad z")


def test_blocked_kernel_sum_float32_inputs_give_float64_sum_and_input_dtype_grads():
    x = torch.randn(20, 6, requires_grad=True)
    total = reference.kernel_sum_blocked(x, x, 0.5, block=8)
    assert total.dtype == torch.float64
    (g,) = torch.autograd.grad(total, x)
    assert g.dtype == torch.float32
    (e,) = torch.autograd.grad(reference.kernel_sum(x.double(), x.double(), 0.5), x)
    assert_close(g, e, rtol=1e-6, atol=1e-6 * e.abs().max().item(), name="self-sum grad")


def test_blocked_nan_input_gives_nan():
    x = torch.randn(10, 4, dtype=torch.float64)
    x[3, 1] = float("nan")
    assert torch.isnan(reference.cw_normality_blocked(x, 0.5, block=4))


SETUP = """
import torch
from lcw_fast import reference

x = torch.randn(2048, 3072, dtype=torch.float64, requires_grad=True)
y = (0.1 + torch.randn(2048, 3072, dtype=torch.float64)).requires_grad_()
reference.cw_distance_blocked(x[:64], y[:64], 0.5).backward()  # warm up the BLAS threads
x.grad = y.grad = None
"""
MEASURED = """
value = reference.cw_distance_blocked(x, y, 0.5)
value.backward()
assert torch.isfinite(value) and torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
"""


@pytest.mark.skipif(not HAS_PEAK_RESET, reason="needs Linux /proc to reset the peak RSS")
def test_blocked_cw_distance_fwd_bwd_at_2048_by_3072_grows_peak_rss_by_less_than_1_5_gb():
    assert_peak_rss_growth_below(SETUP, MEASURED, int(1.5 * 2**30))
