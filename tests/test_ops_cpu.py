"""The fused C++ CPU kernels (torch.ops.lcw_fast on CPU tensors) against the float64 reference.

Tolerances (issue 2): float64 agrees to 1e-10 relative; float32 values within 1e-5 * C0 * (sum of
the magnitudes of the three mean terms), float32 gradients within 1e-5 relative L2 error.
Shapes cross the 128-row tiles (129, 300, 600), use n != m, and both distance paths of the kernel
(from differences for D <= 10, from a Gram tile above).
"""
import math

import pytest
import torch

import lcw_fast
from lcw_fast import reference
from helpers import assert_close, cw_distance_scale, cw_normality_scale

OPS = torch.ops.lcw_fast
C0 = lcw_fast.C0
F64_RTOL = 1e-10
F32_REL = 1e-5

# (n, m, D): n = 1, n not a multiple of the tile, n != m, small and large D; m = 600 crosses the
# 512-column spans of the Gram path.
SHAPES = [(1, 1, 2), (1, 7, 3), (129, 300, 3), (300, 129, 8), (257, 600, 40), (130, 70, 784), (3, 5, 12288)]


def _samples(n, m, dim, dtype, non_contiguous=False):
    """x ~ N(0, I), y ~ N(0.3, 1.2^2 I) of shapes (n, D), (m, D); optionally as strided views."""
    if non_contiguous:
        x = torch.randn(dim, n, dtype=dtype).t()
        y = (0.3 + 1.2 * torch.randn(m, 2 * dim, dtype=dtype))[:, ::2]
        assert not x.is_contiguous() and not y.is_contiguous()
        return x, y
    return torch.randn(n, dim, dtype=dtype), 0.3 + 1.2 * torch.randn(m, dim, dtype=dtype)


def _check_value(got, expected, scale, name):
    if got.dtype == torch.float64:
        assert abs(got.item() - expected.item()) <= F64_RTOL * abs(expected.item()), (
            f"{name}: {got.item()!r} vs {expected.item()!r}")
    else:
        assert abs(got.item() - expected.item()) <= F32_REL * scale, (
            f"{name}: {got.item()!r} vs {expected.item()!r}, error {abs(got.item() - expected.item()):.3e}, "
            f"allowed {F32_REL * scale:.3e}")


def _check_grad(got, expected, name):
    if got.dtype == torch.float64:
        assert_close(got, expected, rtol=F64_RTOL, atol=F64_RTOL * expected.abs().max().item(), name=name)
    else:
        assert_close(got, expected, atol=math.inf, rel_l2=F32_REL, name=name)


def _grads(out, inputs):
    wanted = [t for t in inputs if t.requires_grad]
    found = iter(torch.autograd.grad(out, wanted))
    return [next(found) if t.requires_grad else None for t in inputs]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n, m, dim", SHAPES)
def test_cw_distance_matches_reference(n, m, dim, dtype):
    x, y = _samples(n, m, dim, dtype)
    gamma = 0.7
    x.requires_grad_(True)
    y.requires_grad_(True)
    got = lcw_fast.cw_distance(x, y, gamma, backend="cpu")
    assert got.dtype == dtype and got.shape == ()
    xd, yd = x.detach().double().requires_grad_(True), y.detach().double().requires_grad_(True)
    expected = reference.cw_distance(xd, yd, gamma, exact=True)
    _check_value(got, expected, cw_distance_scale(x.detach(), y.detach(), gamma), "cw_distance")
    for g, e, name in zip(_grads(got, [x, y]), _grads(expected, [xd, yd]), ["grad x", "grad y"]):
        _check_grad(g, e, name)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n, dim", [(1, 2), (129, 3), (300, 8), (600, 5), (257, 40), (130, 784), (4, 12288)])
def test_cw_normality_matches_reference(n, dim, dtype):
    z = (0.2 + torch.randn(n, dim, dtype=dtype)).requires_grad_(True)
    got = lcw_fast.cw_normality(z, backend="cpu")
    gamma = lcw_fast.normality_gamma(n)
    zd = z.detach().double().requires_grad_(True)
    expected = reference.cw_normality(zd, gamma, exact=True)
    _check_value(got, expected, cw_normality_scale(z.detach(), gamma), "cw_normality")
    _check_grad(*_grads(got, [z]), *_grads(expected, [zd]), "grad z")


@pytest.mark.parametrize("wrt", ["x", "y", "both"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_grads_of_either_input_with_non_contiguous_inputs(wrt, dtype):
    x, y = _samples(131, 90, 6, dtype, non_contiguous=True)
    gamma = 0.4
    x.requires_grad_(wrt in ("x", "both"))
    y.requires_grad_(wrt in ("y", "both"))
    got = lcw_fast.cw_distance(x, y, gamma, backend="cpu")
    xd = x.detach().double().requires_grad_(x.requires_grad)
    yd = y.detach().double().requires_grad_(y.requires_grad)
    expected = reference.cw_distance(xd, yd, gamma, exact=True)
    _check_value(got, expected, cw_distance_scale(x.detach(), y.detach(), gamma), "cw_distance")
    for g, e, name in zip(_grads(got, [x, y]), _grads(expected, [xd, yd]), ["grad x", "grad y"]):
        assert (g is None) == (e is None), name
        if g is not None:
            _check_grad(g, e, name)


@pytest.mark.parametrize("dim", [3, 40])
def test_raw_ops_on_uncentred_data(dim):
    """The ops themselves (no centring by the public API): sums and gradients in float64."""
    x = 2.0 + torch.randn(140, dim, dtype=torch.float64)
    y = -1.0 + torch.randn(75, dim, dtype=torch.float64)
    gamma = 0.3
    xd, yd = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    cross = reference.kernel_sum(xd, yd, gamma)
    own = reference.kernel_sum(xd, xd, gamma)
    assert OPS.kernel_sum(x, y, gamma).item() == pytest.approx(cross.item(), rel=F64_RTOL)
    assert OPS.kernel_sum_self(x, gamma, "fast").item() == pytest.approx(own.item(), rel=F64_RTOL)
    grad_x, grad_y = torch.autograd.grad(cross, (xd, yd))
    _check_grad(OPS.kernel_sum_grad(x, y, gamma), grad_x, "kernel_sum_grad")
    _check_grad(OPS.kernel_sum_grad(y, x, gamma), grad_y, "kernel_sum_grad(y, x)")
    _check_grad(OPS.kernel_sum_self_grad(x, gamma), torch.autograd.grad(own, xd)[0], "kernel_sum_self_grad")
    assert OPS.kernel_sum_grad(x.float(), y.float(), gamma).dtype == torch.float32


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dim", [3, 16])
def test_self_gradient_schedule_covers_every_pair_for_any_thread_count(threads, dim):
    """The self-gradient's round-robin over groups of tiles depends on the thread count."""
    x = torch.randn(1100, dim, dtype=torch.float64)  # 9 tiles: uneven groups for 3 threads
    xd = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(reference.kernel_sum(xd, xd, 0.5), xd)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = OPS.kernel_sum_self_grad(x, 0.5)
        total = OPS.kernel_sum_self(x, 0.5)
    finally:
        torch.set_num_threads(before)
    _check_grad(got, expected, f"kernel_sum_self_grad with {threads} threads")
    assert total.item() == pytest.approx(reference.kernel_sum(x, x, 0.5).item(), rel=F64_RTOL)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n, m, dim, non_contiguous",
                         [(1, 7, 2, False), (129, 300, 3, True), (300, 129, 8, False), (700, 257, 40, False),
                          (130, 600, 784, True), (3, 5, 12288, False)])
def test_grad_pair_matches_reference_and_single_grads(n, m, dim, non_contiguous, dtype, threads):
    """Both gradients from one pass: the float64 reference, and the two single-gradient ops up to
    float32 rounding, for any thread count (the Latin square of row and column groups depends on it)."""
    x, y = _samples(n, m, dim, dtype, non_contiguous)
    gamma = 0.6
    xd, yd = x.double().requires_grad_(True), y.double().requires_grad_(True)
    expected = torch.autograd.grad(reference.kernel_sum(xd, yd, gamma), (xd, yd))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = OPS.kernel_sum_grad_pair(x, y, gamma)
        singles = (OPS.kernel_sum_grad(x, y, gamma), OPS.kernel_sum_grad(y, x, gamma))
    finally:
        torch.set_num_threads(before)
    for g, single, e, t, name in zip(got, singles, expected, (x, y), ("d/dx", "d/dy")):
        assert g.dtype == dtype and g.shape == t.shape, name
        _check_grad(g, e, f"kernel_sum_grad_pair {name}")
        assert_close(g, single, atol=math.inf, rel_l2=1e-12 if dtype == torch.float64 else 1e-6,
                     name=f"kernel_sum_grad_pair {name} vs kernel_sum_grad")


def test_cw_distance_backward_uses_grad_pair_for_both_inputs_only(monkeypatch):
    """With grads of both x and y the backward makes one pair call, with one of them the single call."""
    calls = []
    ops = torch.ops.lcw_fast
    for name in ("kernel_sum_grad", "kernel_sum_grad_pair"):
        op = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda *args, _op=op, _name=name: calls.append(_name) or _op(*args))
    x, y = _samples(70, 50, 5, torch.float64)
    for wrt, expected_calls in (("both", ["kernel_sum_grad_pair"]), ("x", ["kernel_sum_grad"])):
        calls.clear()
        xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(wrt == "both")
        got = _grads(lcw_fast.cw_distance(xg, yg, 0.5, backend="cpu"), [xg, yg])
        xd, yd = x.clone().requires_grad_(True), y.clone().requires_grad_(wrt == "both")
        expected = _grads(reference.cw_distance(xd, yd, 0.5, exact=True), [xd, yd])
        assert calls == expected_calls
        for g, e, name in zip(got, expected, ("grad x", "grad y")):
            assert (g is None) == (e is None), name
            if g is not None:
                _check_grad(g, e, name)


def test_opcheck_all_ops():
    x = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(OPS.kernel_sum, (x, y, 0.5, "default"))
    torch.library.opcheck(OPS.kernel_sum_self, (x, 0.5, "default"))
    torch.library.opcheck(OPS.kernel_sum_grad, (x.detach(), y.detach(), 0.5, "default"))
    torch.library.opcheck(OPS.kernel_sum_self_grad, (x.detach().float(), 0.5, "fast"))
    torch.library.opcheck(OPS.kernel_sum_grad_pair, (x.detach(), y.detach(), 0.5, "default"))
    torch.library.opcheck(OPS.kernel_sum_grad_pair, (y.detach().float(), x.detach().float(), 0.5, "fast"))


def test_gradcheck_float64():
    """cw_distance and kernel_sum with both inputs requiring grad go through kernel_sum_grad_pair."""
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: lcw_fast.cw_distance(a, b, 0.5, backend="cpu"), (x, y))
    assert torch.autograd.gradcheck(lambda a: lcw_fast.cw_normality(a, backend="cpu"), (x,))
    assert torch.autograd.gradcheck(lambda a, b: OPS.kernel_sum(a, b, 0.5, "default"), (x, y))
    assert torch.autograd.gradcheck(lambda a: OPS.kernel_sum_self(a, 0.5, "default"), (x,))


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


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_inputs_give_nan(bad):
    x = torch.randn(140, 4, requires_grad=True)
    y = torch.randn(20, 4)
    with torch.no_grad():
        x[3, 1] = bad
    d = lcw_fast.cw_distance(x, y, 0.5, backend="cpu")
    assert torch.isnan(d)
    assert torch.isnan(torch.autograd.grad(d, x)[0]).all()
    assert torch.isnan(lcw_fast.cw_normality(x, backend="cpu"))
    raw = x.detach()
    assert torch.isnan(OPS.kernel_sum(y, raw, 0.5)) and torch.isnan(OPS.kernel_sum_self(raw, 0.5))
    assert torch.isnan(OPS.kernel_sum_grad(y, raw, 0.5)).all()
    assert torch.isnan(OPS.kernel_sum_self_grad(raw, 0.5)).all()
    assert all(torch.isnan(g).all() for g in OPS.kernel_sum_grad_pair(y, raw, 0.5))


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
