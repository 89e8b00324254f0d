"""Triton kernels on a CUDA GPU at real sizes, against the bounded-memory float64 reference
(lcw_fast.reference.kernel_sum_blocked: no n*m or n*m*D buffer, so n = 65,537 and D = 12,288 fit).

Skipped where no GPU is visible (conftest.py). Every output and scratch buffer is filled with NaN
before each launch (LCW_FAST_POISON=1), so anything a kernel fails to write fails the test.
Tolerances: float32 "default" mode meets the core issue's float32 bounds; bf16 inputs are compared
against the float64 result on the same (rounded) points, their gradient comes back in bf16; "fast"
(TF32) mode has the looser bounds FAST_* below.
"""
import pytest
import torch

import lcw_fast
from lcw_fast import backends, reference
from helpers import assert_close

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not backends.has_triton(), reason="triton is not installed")]

GAMMA = 0.37
F32_VALUE_RTOL, F32_GRAD_REL_L2 = 1e-5, 1e-5
BF16_GRAD_REL_L2 = 1e-2  # the bf16 result's own rounding is 2^-9 per entry
FAST_VALUE_RTOL, FAST_GRAD_REL_L2 = 2e-3, 2e-2  # TF32 keeps 10 mantissa bits of each Gram operand


@pytest.fixture(autouse=True)
def tk(monkeypatch):
    from lcw_fast import triton_kernel_sum

    monkeypatch.setenv("LCW_FAST_POISON", "1")
    return triton_kernel_sum


def blocked_reference(x, y, gamma):
    """float64 sum_ij k(|x_i - y_j|^2) and its gradient w.r.t. x (y held fixed), bounded memory."""
    xd = x.detach().double().requires_grad_()
    total = reference.kernel_sum_blocked(xd, y.detach().double(), gamma)
    (grad,) = torch.autograd.grad(total, xd)
    return total.detach(), grad


def check(x, y, precision="default", value_rtol=F32_VALUE_RTOL, grad_rel_l2=F32_GRAD_REL_L2, self_sum=True):
    ops = torch.ops.lcw_fast_triton
    pair, gx = blocked_reference(x, y, GAMMA)
    _, gy = blocked_reference(y, x, GAMMA)
    assert_close(ops.kernel_sum(x, y, GAMMA, precision), pair, rtol=value_rtol, name="kernel_sum")
    got = ops.kernel_sum_grad(x, y, GAMMA, precision)
    assert got.dtype == x.dtype
    assert_close(got, gx, atol=float("inf"), rel_l2=grad_rel_l2, name="kernel_sum_grad")
    value, got_x, got_y = ops.kernel_sum_value_grad_pair(x, y, GAMMA, precision)
    assert_close(value, pair, rtol=value_rtol, name="kernel_sum_value_grad_pair")
    assert_close(got_x, gx, atol=float("inf"), rel_l2=grad_rel_l2, name="kernel_sum_value_grad_pair x")
    assert_close(got_y, gy, atol=float("inf"), rel_l2=grad_rel_l2, name="kernel_sum_value_grad_pair y")
    if self_sum:
        own, gs = blocked_reference(x, x, GAMMA)
        assert_close(ops.kernel_sum_self(x, GAMMA, precision), own, rtol=value_rtol, name="kernel_sum_self")
        if x.shape[0] > 1:
            assert_close(ops.kernel_sum_self_grad(x, GAMMA, precision), 2.0 * gs, atol=float("inf"),
                         rel_l2=grad_rel_l2, name="kernel_sum_self_grad")


@pytest.mark.parametrize(
    "n, m, dim",
    [(1, 1, 64), (1, 777, 12), (4097, 3001, 2), (2049, 1023, 3), (5001, 4099, 64), (3001, 2000, 256),
     (2047, 1025, 784), (1025, 999, 12288)],
)
def test_float32_default_mode(n, m, dim):
    check(torch.randn(n, dim, device="cuda"), torch.randn(m, dim, device="cuda") + 0.2)


def test_n_65537_latent_self_sum():
    x = torch.randn(65537, 64, device="cuda")
    check(x, x[::7], self_sum=True)


@pytest.mark.parametrize("dim", [64, 784])
def test_non_contiguous(dim):
    x = torch.randn(dim, 3001, device="cuda").t()
    y = torch.randn(2000, 2 * dim, device="cuda")[:, ::2]
    check(x, y)


@pytest.mark.parametrize("dim", [64, 784])
def test_bf16_inputs_accumulate_in_float32(dim):
    x = torch.randn(4099, dim, device="cuda").bfloat16()
    y = torch.randn(3001, dim, device="cuda").bfloat16()
    check(x, y, grad_rel_l2=BF16_GRAD_REL_L2)


@pytest.mark.parametrize("dim", [16, 784])
def test_fast_tf32_mode_within_its_documented_tolerance(dim):
    check(torch.randn(4099, dim, device="cuda"), torch.randn(3001, dim, device="cuda"), precision="fast",
          value_rtol=FAST_VALUE_RTOL, grad_rel_l2=FAST_GRAD_REL_L2)


def test_public_cw_normality_at_a_latent_batch():
    z = torch.randn(16384, 64, device="cuda", requires_grad=True)
    zd = z.detach().double().requires_grad_()
    gamma = lcw_fast.normality_gamma(16384)
    got, expected = lcw_fast.cw_normality(z, backend="triton"), reference.cw_normality_blocked(zd, gamma)
    assert abs(got.item() - expected.item()) <= F32_VALUE_RTOL * reference.cw_normality_scale(z, gamma)
    (g,), (e,) = torch.autograd.grad(got, z), torch.autograd.grad(expected, zd)
    assert_close(g, e, atol=float("inf"), rel_l2=F32_GRAD_REL_L2, name="cw_normality grad")


@pytest.mark.slow
def test_million_points_latent_fwd_bwd_stays_under_2_gb():
    z = torch.randn(1 << 20, 64, device="cuda", requires_grad=True)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    lcw_fast.cw_normality(z, backend="triton").backward()
    assert torch.isfinite(z.grad).all()
    assert torch.cuda.max_memory_allocated() - base < 2 * 2**30


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_tensors_on_a_device_other_than_the_current_one():
    """Triton launches on the current device: the ops must make the tensors' device current."""
    x, y = torch.randn(300, 12, device="cuda:1"), torch.randn(200, 12, device="cuda:1")
    assert torch.cuda.current_device() == 0
    check(x, y)
    check(torch.randn(70, 784, device="cuda:1"), torch.randn(50, 784, device="cuda:1"))
