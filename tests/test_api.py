"""Public API semantics that hold for every backend: bandwidths, conventions, validation, dispatch.

The op contract of every backend is tested in test_ops.py; backend-specific checks in test_ops_cpu.py,
test_triton.py and test_cuda_*.py.
"""
import math

import pytest
import torch

import dataclasses

import lcw_fast
from lcw_fast import backends, ops, reference
from helpers import assert_close


def test_bandwidth_helpers_match_the_paper():
    assert lcw_fast.silverman_gamma(0.3081, 256) == pytest.approx(0.0116, abs=5e-5)  # MNIST, batch 256
    assert lcw_fast.silverman_gamma(1.0, 1.0) == pytest.approx(1.06**2)
    assert lcw_fast.normality_gamma(1) == pytest.approx((4 / 3) ** 0.4)
    assert lcw_fast.normality_gamma(256) == pytest.approx((4 / 768) ** 0.4)


def test_cw_distance_formula_by_hand():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    gamma, c = 0.5, 1.0  # D = 2
    k = lambda d: (gamma + d / c) ** -0.5
    xx = (2 * k(0) + 2 * k(25)) / 4
    yy = k(0)
    xy = (k(0) + k(25)) / 2
    expected = (xx + yy - 2 * xy) / (2 * math.sqrt(math.pi))
    got = lcw_fast.cw_distance(x, y, gamma=gamma, backend="reference")
    assert got.shape == () and got.dtype == torch.float64
    assert got.item() == pytest.approx(expected, rel=1e-14)


def test_cw_normality_formula_by_hand():
    z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    n, c = 2, 3.0
    gamma = lcw_fast.normality_gamma(n)
    k = lambda d: (gamma + d / c) ** -0.5
    pairs = (2 * k(0) + 2 * k(5)) / 4
    prior = ((gamma + 0.5 + 1 / c) ** -0.5 + (gamma + 0.5 + 4 / c) ** -0.5) / 2
    expected = lcw_fast.C0 * (pairs + (1 + gamma) ** -0.5 - 2 * prior)
    got = lcw_fast.cw_normality(z, backend="reference")
    assert got.item() == pytest.approx(expected, rel=1e-14)


def test_silverman_gamma_uses_unbiased_std_of_both_samples_and_carries_no_gradient():
    x = torch.randn(40, 5, dtype=torch.float64, requires_grad=True)
    y = 2.0 * torch.randn(30, 5, dtype=torch.float64)
    std = torch.cat([x, y]).std().item()
    gamma = lcw_fast.silverman_gamma(std, (40 + 30) / 2)
    auto = lcw_fast.cw_distance(x, y, "silverman", backend="reference")
    fixed = lcw_fast.cw_distance(x, y, gamma, backend="reference")
    assert auto.item() == pytest.approx(fixed.item(), rel=1e-12)
    (g_auto,) = torch.autograd.grad(auto, x)
    (g_fixed,) = torch.autograd.grad(fixed, x)
    assert_close(g_auto, g_fixed, rtol=1e-10, atol=1e-14, name="grad with silverman gamma")


def test_distance_of_a_sample_to_itself_is_zero_and_invariant_to_translation():
    x = torch.randn(50, 7, dtype=torch.float64)
    y = torch.randn(20, 7, dtype=torch.float64) + 0.5
    assert lcw_fast.cw_distance(x, x, 0.3, backend="reference").abs().item() < 1e-15
    a = lcw_fast.cw_distance(x, y, 0.3, backend="reference")
    b = lcw_fast.cw_distance(x + 10.0, y + 10.0, 0.3, backend="reference")
    assert a.item() == pytest.approx(b.item(), rel=1e-9)
    assert a.item() > 0


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: (torch.randn(4), torch.randn(4, 3)), "x must be 2-D"),
        (lambda: (torch.randn(4, 3), torch.randn(2, 3, 1)), "y must be 2-D"),
        (lambda: (torch.randn(4, 1), torch.randn(4, 1)), "D >= 2"),
        (lambda: (torch.randn(0, 3), torch.randn(4, 3)), "x must hold at least one point"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 5)), "same dimension D"),
        (lambda: (torch.ones(4, 3, dtype=torch.int64), torch.randn(4, 3)), "x must have a floating dtype"),
        (lambda: (torch.randn(4, 3), torch.ones(4, 3, dtype=torch.bool)), "y must have a floating dtype"),
        (lambda: (torch.randn(4, 3, dtype=torch.complex64), torch.randn(4, 3)), "x must have a floating dtype"),
        (lambda: (torch.randn(4, 3), torch.randn(4, 3, device="meta")), "same device"),
        (lambda: ([[1.0, 2.0]], torch.randn(4, 2)), "x must be a torch.Tensor"),
    ],
)
def test_bad_samples_are_named_in_the_error(make, match):
    x, y = make()
    with pytest.raises((TypeError, ValueError), match=match):
        lcw_fast.cw_distance(x, y, 1.0)


@pytest.mark.parametrize("gamma, match", [(0.0, "positive"), (-1.0, "positive"), (math.inf, "finite"),
                                          (math.nan, "finite"), ("scott", "gamma must be"), (True, "gamma must be")])
def test_bad_gamma_is_named_in_the_error(gamma, match):
    x = torch.randn(4, 3)
    with pytest.raises((TypeError, ValueError), match=match):
        lcw_fast.cw_distance(x, x, gamma)
    if not isinstance(gamma, str):
        with pytest.raises((TypeError, ValueError), match=match):
            lcw_fast.cw_normality(x, gamma)


def test_bad_backend_and_precision_are_named_in_the_error():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="backend must be one of"):
        lcw_fast.cw_normality(x, backend="numpy")
    with pytest.raises(ValueError, match="precision must be one of"):
        lcw_fast.cw_normality(x, precision="tf32")
    with pytest.raises(ValueError, match="backend='cuda' needs cuda tensors"):
        lcw_fast.cw_normality(x, backend="cuda")


def test_result_dtype_follows_the_inputs():
    x32, x64 = torch.randn(6, 4), torch.randn(5, 4, dtype=torch.float64)
    assert lcw_fast.cw_distance(x32, x32 + 1, 0.5, backend="reference").dtype == torch.float32
    assert lcw_fast.cw_distance(x32, x64, 0.5, backend="reference").dtype == torch.float64
    assert lcw_fast.cw_normality(x64, backend="reference").dtype == torch.float64


def test_reference_paper_path_matches_exact_path_in_float64():
    x = torch.randn(64, 30, dtype=torch.float64)
    y = torch.randn(48, 30, dtype=torch.float64)
    fast = reference.cw_distance(x, y, 0.2, exact=False)
    exact = reference.cw_distance(x, y, 0.2, exact=True)
    assert fast.item() == pytest.approx(exact.item(), rel=1e-10)


def test_backend_table_lists_every_backend_and_resolve_reads_it():
    assert set(backends.TABLE) == set(lcw_fast.BACKENDS) - {"auto"}
    assert backends.TABLE["reference"].ops() == () and not backends.TABLE["reference"].fused
    assert "reference" in backends.available("cpu")
    cpu = backends.TABLE["cpu"]
    if cpu.unavailable() is None:
        assert cpu.ops() == ops.ALL_OPS and "cpu" in backends.available("cpu")
        assert backends.resolve("cpu", torch.randn(3, 2)).has == frozenset(ops.ALL_OPS)
    assert backends.TABLE["cuda"].available_on("cpu") == "backend='cuda' needs cuda tensors, got tensors on cpu"


@pytest.mark.skipif(not ops.has_extension(), reason="the C++ extension is not built")
def test_a_backend_without_one_pass_ops_falls_back_to_the_value_ops(monkeypatch):
    """A table entry lists the ops a backend has: without the one-pass ops the public API uses the
    value ops and their recomputing backward, with the same results."""
    x = torch.randn(30, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randn(20, 5, dtype=torch.float64, requires_grad=True)
    one_pass = lcw_fast.cw_distance(x, y, 0.5, backend="cpu")
    expected = torch.autograd.grad(one_pass, (x, y))
    value_only = dataclasses.replace(backends.TABLE["cpu"], ops=lambda: ops.VALUE_OPS + ops.GRAD_OPS)
    monkeypatch.setitem(backends.TABLE, "cpu", value_only)
    assert not backends.resolve("cpu", x).has & set(ops.ONE_PASS_OPS)
    got = lcw_fast.cw_distance(x, y, 0.5, backend="cpu")
    assert got.item() == pytest.approx(one_pass.item(), rel=1e-12)
    for g, e in zip(torch.autograd.grad(got, (x, y)), expected):
        assert_close(g, e, rtol=1e-12, atol=1e-15, name="fallback gradient")
