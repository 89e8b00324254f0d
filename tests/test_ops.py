"""The op contract (csrc/lcw_fast.cpp, lcw_fast/ops.py), tested once for every backend of
lcw_fast.backends.TABLE available here: cpu; triton (under its CPU interpreter without a GPU, so
with tiny shapes); cuda and triton on a GPU (marked gpu).

Every registered op a backend has (its table entry's ops()) against the blocked float64 reference
lcw_fast.reference.kernel_sum_blocked, and the public API against cw_distance_blocked /
cw_normality_blocked. Tolerances: float64 to 1e-10 relative; float32 values within 1e-5 x the term
scale (a raw kernel sum is its own scale: all its terms are positive), float32 gradients within
1e-5 relative L2. Non-finite inputs: NaN value and every gradient entry NaN, on every backend.
Backend-specific checks (schedules, tile shapes, scratch budgets, poison) live in test_ops_cpu.py,
test_triton.py and test_cuda_*.py.
"""
import math

import pytest
import torch

import lcw_fast
from lcw_fast import backends, ops, reference
from helpers import assert_close

HAS_GPU = torch.cuda.is_available()
F64_RTOL = 1e-10
F32_REL = 1e-5
GAMMA = 0.6


def _backend_params():
    params = []
    for name in backends.FUSED:
        device = "cuda" if name == "cuda" or HAS_GPU else "cpu"
        marks = [pytest.mark.gpu] if device == "cuda" else []
        why = backends.TABLE[name].available_on(device)
        if why is not None:
            marks.append(pytest.mark.skip(reason=why))
        params.append(pytest.param((name, device), id=f"{name}-{device}", marks=marks))
    return params


@pytest.fixture(params=_backend_params())
def backend(request):
    """(backend name, device type)."""
    return request.param


def _interpreted(backend):
    return backend[0] == "triton" and backend[1] == "cpu"


def _ops(backend):
    return backends.TABLE[backend[0]].ops()


def _lib(backend):
    return getattr(torch.ops, backends.TABLE[backend[0]].namespace())


# (n, m, D): n = 1, n not a multiple of any tile, n != m, D = 2, both CPU distance paths (direct for
# D <= 10, Gram above), m = 600 crossing the CPU's 512-column spans, the GPU's fused (D <= 256) and
# large-D paths. The Triton interpreter gets the tiny list.
SHAPES = [(1, 1, 2), (1, 7, 3), (129, 300, 3), (300, 129, 8), (257, 600, 40), (97, 161, 256), (65, 70, 257),
          (130, 70, 784), (3, 5, 12288)]
TINY_SHAPES = [(1, 1, 2), (1, 5, 3), (67, 45, 2), (20, 9, 260)]


def _shapes(backend):
    return TINY_SHAPES if _interpreted(backend) else SHAPES


def _samples(backend, n, m, dim, dtype, non_contiguous=False):
    """x ~ N(0, I) and y ~ N(0.3, 1.2^2 I) of shapes (n, D), (m, D), optionally as strided views."""
    device = backend[1]
    if non_contiguous:
        x = torch.randn(dim, n, dtype=dtype, device=device).t()
        y = (0.3 + 1.2 * torch.randn(m, 2 * dim, dtype=dtype, device=device))[:, ::2]
        assert not x.is_contiguous() and not y.is_contiguous()
        return x, y
    return (torch.randn(n, dim, dtype=dtype, device=device),
            0.3 + 1.2 * torch.randn(m, dim, dtype=dtype, device=device))


def _expected(x, y, gamma=GAMMA):
    """Float64 reference: {name: value or gradient} for the sums of every op on (x, y)."""
    xd, yd = x.detach().double().requires_grad_(), y.detach().double().requires_grad_()
    cross = reference.kernel_sum_blocked(xd, yd, gamma)
    own = reference.kernel_sum_blocked(xd, xd, gamma)
    gx, gy = torch.autograd.grad(cross, (xd, yd))
    (gs,) = torch.autograd.grad(own, xd)
    return {"cross": cross.detach(), "self": own.detach(), "gx": gx, "gy": gy, "gs": gs}


def _results(lib, names, x, y, gamma=GAMMA):
    """{op call: (output, reference key)} for every op in `names` on (x, y)."""
    calls = {
        "kernel_sum": [("kernel_sum", (x, y), ["cross"])],
        "kernel_sum_self": [("kernel_sum_self", (x,), ["self"])],
        "kernel_sum_grad": [("kernel_sum_grad", (x, y), ["gx"]), ("kernel_sum_grad(y, x)", (y, x), ["gy"])],
        "kernel_sum_self_grad": [("kernel_sum_self_grad", (x,), ["gs"])],
        "kernel_sum_grad_pair": [("kernel_sum_grad_pair", (x, y), ["gx", "gy"])],
        "kernel_sum_value_grad": [("kernel_sum_value_grad", (x, y), ["cross", "gx"]),
                                  ("kernel_sum_value_grad(y, x)", (y, x), ["cross", "gy"])],
        "kernel_sum_value_grad_pair": [("kernel_sum_value_grad_pair", (x, y), ["cross", "gx", "gy"])],
        "kernel_sum_self_value_grad": [("kernel_sum_self_value_grad", (x,), ["self", "gs"])],
    }
    out = {}
    for name in names:
        for label, samples, keys in calls[name]:
            got = getattr(lib, name)(*samples, gamma, "default")
            out[label] = (got if isinstance(got, tuple) else (got,), keys, samples)
    return out


def _check(got, expected, key, like, name, grad_scale):
    """One output against the reference: values (0-dim float64) and gradients (like's shape/dtype)."""
    exact = like.dtype == torch.float64
    if key in ("cross", "self"):
        assert got.dtype == torch.float64 and got.shape == (), name
        assert_close(got, expected, rtol=F64_RTOL if exact else F32_REL, name=name)
        return
    assert got.dtype == like.dtype and got.shape == like.shape and got.is_contiguous(), name
    assert got.device == like.device, name
    tol = F64_RTOL if exact else F32_REL
    # The self-sum gradient of n = 1 is exactly 0: compared absolutely, in units of the cross gradient.
    if expected.norm() == 0:
        assert_close(got, expected, atol=tol * grad_scale, name=name)
    elif exact:
        assert_close(got, expected, rtol=tol, atol=tol * expected.abs().max().item(), name=name)
    else:
        assert_close(got, expected, atol=math.inf, rel_l2=tol, name=name)


def _check_all_ops(backend, x, y):
    expected = _expected(x, y)
    grad_scale = expected["gx"].abs().max().item()
    results = _results(_lib(backend), _ops(backend), x, y)
    assert results, f"{backend[0]} has no ops"
    likes = {"cross": x, "self": x, "gx": x, "gy": y, "gs": x}
    for label, (outputs, keys, _) in results.items():
        assert len(outputs) == len(keys), label
        for got, key in zip(outputs, keys):
            _check(got, expected[key], key, likes[key], f"{label} [{key}]", grad_scale)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_every_op_matches_the_float64_reference(backend, shape, dtype):
    shapes = _shapes(backend)
    if shape >= len(shapes):
        pytest.skip("the Triton interpreter runs the short shape list")
    x, y = _samples(backend, *shapes[shape], dtype)
    _check_all_ops(backend, x, y)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_op_on_non_contiguous_inputs(backend, dtype):
    for n, m, dim in ((50, 41, 9), (30, 23, 300)) if _interpreted(backend) else ((131, 90, 6), (130, 257, 300)):
        _check_all_ops(backend, *_samples(backend, n, m, dim, dtype, non_contiguous=True))


def test_one_pass_backward_scales_the_saved_gradients_by_grad_output(backend):
    names = [name for name in ops.ONE_PASS_OPS if name in _ops(backend)]
    if not names:
        pytest.skip(f"{backend[0]} has no one-pass ops (the public API falls back to the value ops)")
    lib = _lib(backend)
    x, y = (t.requires_grad_() for t in _samples(backend, 45, 38, 7, torch.float64))
    expected = _expected(x, y)
    for name in names:
        samples = (x,) if name == "kernel_sum_self_value_grad" else (x, y)
        outputs = getattr(lib, name)(*samples, GAMMA, "default")
        assert outputs[0].requires_grad and not any(g.requires_grad for g in outputs[1:]), name
        got = torch.autograd.grad(outputs[0], samples, grad_outputs=torch.tensor(-2.5, dtype=torch.float64,
                                                                                  device=x.device))
        keys = ["gs"] if len(samples) == 1 else ["gx", "gy"]  # kernel_sum_value_grad gets d/dy in its backward
        for g, key in zip(got, keys):
            assert_close(g, -2.5 * expected[key], rtol=F64_RTOL, atol=F64_RTOL * expected[key].abs().max().item(),
                         name=f"{name} backward [{key}]")


def _public_loss(fn, backend_name, x, y):
    if fn == "cw_distance":
        return lcw_fast.cw_distance(x, y, GAMMA, backend=backend_name)
    return lcw_fast.cw_normality(x, backend=backend_name)


def _public_expected(fn, x, y):
    xd = x.detach().double().requires_grad_(x.requires_grad)
    yd = y.detach().double().requires_grad_(y.requires_grad)
    if fn == "cw_distance":
        return reference.cw_distance_blocked(xd, yd, GAMMA), reference.cw_distance_scale(x, y, GAMMA), (xd, yd)
    gamma = lcw_fast.normality_gamma(x.shape[0])
    return reference.cw_normality_blocked(xd, gamma), reference.cw_normality_scale(x, gamma), (xd,)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("wrt", ["x", "y", "both"])
@pytest.mark.parametrize("fn", ["cw_distance", "cw_normality"])
def test_public_api_values_and_grads(backend, fn, wrt, dtype):
    if fn == "cw_normality" and wrt != "x":
        pytest.skip("cw_normality has one input")
    shapes = [(1, 7, 3), (67, 45, 5)] if _interpreted(backend) else [(1, 7, 3), (300, 129, 8), (130, 257, 40)]
    for n, m, dim in shapes:
        x, y = _samples(backend, n, m, dim, dtype)
        x.requires_grad_(wrt in ("x", "both"))
        y.requires_grad_(wrt in ("y", "both"))
        got = _public_loss(fn, backend[0], x, y)
        assert got.dtype == dtype and got.shape == ()
        expected, scale, ref_inputs = _public_expected(fn, x, y)
        tol = F64_RTOL if dtype == torch.float64 else F32_REL
        assert abs(got.item() - expected.item()) <= tol * scale, f"{fn}: {got.item()!r} vs {expected.item()!r}"
        inputs = [t for t in (x, y)[:len(ref_inputs)] if t.requires_grad]
        wanted = [t for t in ref_inputs if t.requires_grad]
        for g, e, t in zip(torch.autograd.grad(got, inputs), torch.autograd.grad(expected, wanted), inputs):
            _check(g, e, "grad", t, f"{fn} grad ({n}, {m}, {dim})", e.abs().max().item())


def _expected_calls(have, fn, wrt):
    """The ops one forward of `fn` calls: one-pass ops where an input needs grad and the backend has them."""
    one_pass = set(ops.ONE_PASS_OPS) <= set(have)
    if fn == "cw_normality":
        return ["kernel_sum_self_value_grad"] if one_pass and wrt in ("x", "both") else ["kernel_sum_self"]
    if not one_pass or wrt == "none":
        return ["kernel_sum_self", "kernel_sum_self", "kernel_sum"]
    own = {"x": ["kernel_sum_self_value_grad", "kernel_sum_self"], "y": ["kernel_sum_self", "kernel_sum_self_value_grad"],
           "both": ["kernel_sum_self_value_grad"] * 2}[wrt]
    return own + ["kernel_sum_value_grad_pair" if wrt == "both" else "kernel_sum_value_grad"]


@pytest.mark.parametrize("wrt", ["none", "x", "y", "both"])
@pytest.mark.parametrize("fn", ["cw_distance", "cw_normality"])
def test_public_api_takes_each_sum_from_one_call(backend, fn, wrt, monkeypatch):
    """Forward-only calls use the value ops; with gradients each of the sums comes from one one-pass call
    (value and gradients together) and the backward calls no op, where the backend has the one-pass ops."""
    calls = []
    lib = _lib(backend)
    for name in _ops(backend):
        op = getattr(lib, name)
        monkeypatch.setattr(lib, name, lambda *args, _op=op, _name=name: calls.append(_name) or _op(*args))
    x, y = _samples(backend, 20, 13, 4, torch.float64)
    x.requires_grad_(wrt in ("x", "both"))
    y.requires_grad_(wrt in ("y", "both"))
    loss = _public_loss(fn, backend[0], x, y)
    assert calls == _expected_calls(_ops(backend), fn, wrt)
    if loss.requires_grad:
        calls.clear()
        loss.backward()
        if set(ops.ONE_PASS_OPS) <= set(_ops(backend)):
            assert calls == []
    with torch.no_grad():
        calls.clear()
        x.requires_grad_(True)
        _public_loss(fn, backend[0], x, y)
        assert calls == _expected_calls(_ops(backend), fn, "none")


def test_opcheck_every_op(backend):
    lib = _lib(backend)
    x, y = (t.requires_grad_() for t in _samples(backend, 9, 5, 3, torch.float64))
    for name in _ops(backend):
        samples = (x,) if "self" in name else (x, y)
        if name in ops.GRAD_OPS:
            samples = tuple(t.detach() for t in samples)
        torch.library.opcheck(getattr(lib, name), (*samples, GAMMA, "default"))


def test_gradcheck_float64(backend):
    """The public API (one-pass ops where the backend has them) and the value ops' recomputing backward."""
    lib = _lib(backend)
    n, m, dim = (3, 2, 2) if _interpreted(backend) else (7, 4, 3)
    x, y = (t.requires_grad_() for t in _samples(backend, n, m, dim, torch.float64))
    name = backend[0]
    assert torch.autograd.gradcheck(lambda a, b: lcw_fast.cw_distance(a, b, 0.5, backend=name), (x, y))
    assert torch.autograd.gradcheck(lambda a: lcw_fast.cw_normality(a, backend=name), (x,))
    assert torch.autograd.gradcheck(lambda a, b: lib.kernel_sum(a, b, 0.5, "default"), (x, y))
    assert torch.autograd.gradcheck(lambda a: lib.kernel_sum_self(a, 0.5, "default"), (x,))
    for op in ops.ONE_PASS_OPS:
        if op in _ops(backend):
            samples = (x,) if "self" in op else (x, y)
            assert torch.autograd.gradcheck(lambda *s, _op=op: getattr(lib, _op)(*s, 0.5, "default")[0], samples)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy, under the Triton interpreter
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_gives_nan_value_and_all_nan_gradients(backend, bad):
    """A NaN or Inf anywhere in an op's inputs, in either argument, on both distance paths (small and
    large D): its value is NaN and every entry of every gradient it returns is NaN. Ops whose inputs
    are all finite are not affected."""
    lib = _lib(backend)
    for dim in (4, 290):
        x, y = _samples(backend, 70, 5, dim, torch.float32)
        x[35, 1] = bad
        for a, b in ((x, y), (y, x)):
            for label, (outputs, keys, samples) in _results(lib, _ops(backend), a, b).items():
                finite = all(torch.isfinite(t).all() for t in samples)
                for got, key in zip(outputs, keys):
                    where = f"{label} [{key}] with {bad} at D = {dim}"
                    assert (not torch.isnan(got).any()) if finite else torch.isnan(got).all(), where
        x.requires_grad_()
        y.requires_grad_()
        loss = _public_loss("cw_distance", backend[0], x, y)
        assert torch.isnan(loss)
        assert all(torch.isnan(g).all() for g in torch.autograd.grad(loss, (x, y)))
