"""CPU-specific checks of the fused C++ kernels (torch.ops.lcw_fast on CPU tensors): the schedules
that depend on the thread count, one-pass values against the value ops, torch.compile, the CPU's
argument checks and half-precision handling. The op contract itself (every op against the float64
reference, non-finite inputs, opcheck, gradcheck) is tested for every backend in test_ops.py.
"""
import math

import pytest
import torch

import lcw_fast
from lcw_fast import reference
from helpers import assert_close

OPS = torch.ops.lcw_fast
F64_RTOL = 1e-10
F32_REL = 1e-5


def _samples(n, m, dim, dtype, non_contiguous=False):
    """x ~ N(0, I), y ~ N(0.3, 1.2^2 I) of shapes (n, D), (m, D); optionally as strided views."""
    if non_contiguous:
        x = torch.randn(dim, n, dtype=dtype).t()
        y = (0.3 + 1.2 * torch.randn(m, 2 * dim, dtype=dtype))[:, ::2]
        assert not x.is_contiguous() and not y.is_contiguous()
        return x, y
    return torch.randn(n, dim, dtype=dtype), 0.3 + 1.2 * torch.randn(m, dim, dtype=dtype)


def _check_grad(got, expected, name):
    if got.dtype == torch.float64:
        assert_close(got, expected, rtol=F64_RTOL, atol=F64_RTOL * expected.abs().max().item(), name=name)
    else:
        assert_close(got, expected, atol=math.inf, rel_l2=F32_REL, name=name)


class threads:
    """Context manager: torch's intra-op thread count set to `count` inside."""

    def __init__(self, count):
        self.count = count

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.count)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def _check_value(got, expected, dtype, name):
    """A one-pass value against the value op: float64 to 1e-12, float32 to float32 rounding of the sums."""
    assert got.dtype == torch.float64 and got.shape == (), name
    assert got.item() == pytest.approx(expected.item(), rel=1e-12 if dtype == torch.float64 else 1e-6), name


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("dim", [3, 16])
def test_self_gradient_schedule_covers_every_pair_for_any_thread_count(count, dim):
    """The self-gradient's round-robin over groups of tiles depends on the thread count; the one-pass
    op's value sums the same triangle, off-diagonal tiles twice."""
    x = torch.randn(1100, dim, dtype=torch.float64)  # 9 tiles: uneven groups for 3 threads
    xd = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(reference.kernel_sum(xd, xd, 0.5), xd)
    with threads(count):
        got = OPS.kernel_sum_self_grad(x, 0.5)
        total = OPS.kernel_sum_self(x, 0.5)
        value, one_pass = OPS.kernel_sum_self_value_grad(x, 0.5)
        again = OPS.kernel_sum_self_value_grad(x, 0.5)
    _check_grad(got, expected, f"kernel_sum_self_grad with {count} threads")
    assert total.item() == pytest.approx(reference.kernel_sum(x, x, 0.5).item(), rel=F64_RTOL)
    _check_value(value, total, x.dtype, "kernel_sum_self_value_grad value")
    assert torch.equal(one_pass, got), "the one-pass gradient is the gradient op's"
    assert torch.equal(again[0], value) and torch.equal(again[1], one_pass), "not reproducible run to run"


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n, m, dim, non_contiguous",
                         [(1, 7, 2, False), (129, 300, 3, True), (300, 129, 8, False), (700, 257, 40, False),
                          (130, 600, 784, True), (3, 5, 12288, False)])
def test_grad_pair_matches_reference_and_single_grads(n, m, dim, non_contiguous, dtype, count):
    """Both gradients from one pass: the float64 reference, and the two single-gradient ops up to
    float32 rounding, for any thread count (the Latin square of row and column groups depends on it);
    the one-pass ops' values against kernel_sum, their gradients equal to the gradient ops'."""
    x, y = _samples(n, m, dim, dtype, non_contiguous)
    gamma = 0.6
    xd, yd = x.double().requires_grad_(True), y.double().requires_grad_(True)
    expected = torch.autograd.grad(reference.kernel_sum(xd, yd, gamma), (xd, yd))
    with threads(count):
        got = OPS.kernel_sum_grad_pair(x, y, gamma)
        singles = (OPS.kernel_sum_grad(x, y, gamma), OPS.kernel_sum_grad(y, x, gamma))
        total = OPS.kernel_sum(x, y, gamma)
        pair_value, *pair_grads = OPS.kernel_sum_value_grad_pair(x, y, gamma)
        one_pass = [OPS.kernel_sum_value_grad(a, b, gamma) for a, b in ((x, y), (y, x))]
    for g, single, e, t, name in zip(got, singles, expected, (x, y), ("d/dx", "d/dy")):
        assert g.dtype == dtype and g.shape == t.shape, name
        _check_grad(g, e, f"kernel_sum_grad_pair {name}")
        assert_close(g, single, atol=math.inf, rel_l2=1e-12 if dtype == torch.float64 else 1e-6,
                     name=f"kernel_sum_grad_pair {name} vs kernel_sum_grad")
    _check_value(pair_value, total, dtype, "kernel_sum_value_grad_pair value")
    assert all(torch.equal(a, b) for a, b in zip(pair_grads, got)), "one-pass pair gradients"
    for (value, grad), single in zip(one_pass, singles):
        _check_value(value, total, dtype, "kernel_sum_value_grad value")
        assert torch.equal(grad, single), "one-pass gradient"


def test_cross_one_pass_value_does_not_depend_on_the_thread_count():
    """kernel_sum_value_grad sums fixed row tiles in tile order: bit-identical for any thread count."""
    x, y = _samples(1000, 700, 20, torch.float32)
    results = []
    for count in (1, 2, 3):
        with threads(count):
            results.append(OPS.kernel_sum_value_grad(x, y, 0.5))
    for value, grad in results[1:]:
        assert torch.equal(value, results[0][0]) and torch.equal(grad, results[0][1])


@pytest.mark.parametrize("compiler", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph(compiler):
    """Dynamo captures the public API in one graph (fake kernels, AOT autograd through the ops);
    inductor (the default, ~30 s of C++ builds on 2 cores) also generates code around the sums."""
    def loss(x, y):
        return lcw_fast.cw_distance(x, y, 0.5, backend="cpu") + lcw_fast.cw_normality(x, backend="cpu")

    compiled = torch.compile(loss, fullgraph=True, backend=compiler)
    x = torch.randn(40, 5, requires_grad=True)
    y = torch.randn(30, 5)
    got = compiled(x, y)
    expected = loss(x, y)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(expected, x)[0], rtol=1e-5, atol=1e-7,
                 name="compiled grad")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: OPS.kernel_sum(torch.randn(4, 3).half(), torch.randn(4, 3).half(), 0.5), "float32 or float64"),
        (lambda: OPS.kernel_sum_self(torch.randn(4, 3).bfloat16(), 0.5), "float32 or float64"),
        (lambda: OPS.kernel_sum_self_grad(torch.ones(4, 3, dtype=torch.int32), 0.5), "float32 or float64"),
        (lambda: OPS.kernel_sum_grad(torch.randn(4, 3), torch.randn(4, 3, dtype=torch.float64), 0.5), "same dtype"),
        (lambda: OPS.kernel_sum(torch.randn(4, 3), torch.randn(4, 2), 0.5), "same dimension D"),
        (lambda: OPS.kernel_sum_grad_pair(torch.randn(4, 3), torch.randn(4, 3).double(), 0.5), "same dtype"),
        (lambda: OPS.kernel_sum_grad_pair(torch.randn(4, 3), torch.randn(4, 2), 0.5), "same dimension D"),
        (lambda: OPS.kernel_sum_grad_pair(torch.randn(4, 3), torch.randn(4), 0.5), "y must be 2-D"),
        (lambda: OPS.kernel_sum_grad_pair(torch.randn(4, 3), torch.randn(4, 3), 0.0), "gamma must be positive"),
        (lambda: OPS.kernel_sum_value_grad(torch.randn(4, 3), torch.randn(4, 3).double(), 0.5), "same dtype"),
        (lambda: OPS.kernel_sum_value_grad_pair(torch.randn(4, 3), torch.randn(4, 2), 0.5),
         "kernel_sum_value_grad_pair: x and y must have the same dimension D"),
        (lambda: OPS.kernel_sum_self_value_grad(torch.randn(4, 3).half(), 0.5), "float32 or float64"),
        (lambda: OPS.kernel_sum_self_value_grad(torch.randn(4, 3), math.inf), "kernel_sum_self_value_grad: gamma"),
        (lambda: OPS.kernel_sum_self(torch.randn(4), 0.5), "2-D"),
        (lambda: OPS.kernel_sum_self(torch.randn(4, 1), 0.5), "D >= 2"),
        (lambda: OPS.kernel_sum_self(torch.randn(4, 3), -1.0), "gamma must be positive"),
        (lambda: OPS.kernel_sum_self(torch.randn(4, 3), 0.5, "tf32"), "precision must be"),
    ],
)
def test_raw_ops_reject_bad_arguments_clearly(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_half_precision_goes_through_float32():
    x, y = torch.randn(50, 4).half(), torch.randn(40, 4).half()
    got = lcw_fast.cw_distance(x, y, 0.5, backend="cpu")
    assert got.dtype == torch.float16
    expected = reference.cw_distance(x.double(), y.double(), 0.5)
    assert got.item() == pytest.approx(expected.item(), rel=1e-3, abs=1e-4)
