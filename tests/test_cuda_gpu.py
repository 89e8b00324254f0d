"""CUDA-specific checks of the C++/CUDA kernels on a GPU (marked gpu: skipped where none is visible).

The op contract (every op against the float64 reference, odd shapes, non-contiguous inputs,
non-finite inputs, opcheck, gradcheck, the public API) is tested for every backend in test_ops.py.
Here: half-precision inputs, n = 65,537 (reference computed in row chunks), the "fast" TF32 mode,
NaN-poisoned buffers, a tiny scratch budget (many Gram blocks), side streams, run-to-run bit
reproducibility, agreement with the Triton backend, the self-gradient round schedule, and
torch.compile.
"""
import importlib.util
import math

import pytest
import torch

import lcw_fast
from lcw_fast import reference
from helpers import assert_close

pytestmark = pytest.mark.gpu

HAS_TRITON_OPS = importlib.util.find_spec("lcw_fast.triton_kernel_sum") is not None
# (value relative error, gradient relative L2 error) allowed per input dtype; half-precision
# gradients are returned in their own dtype, so their rounding (2^-11, 2^-8) dominates.
TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-5), torch.float16: (1e-5, 2e-3),
       torch.bfloat16: (1e-5, 1e-2)}
GAMMA = 0.5
GRADS = ("kernel_sum_grad", "kernel_sum_grad_yx", "kernel_sum_self_grad", "value_grad.grad", "pair.grad_x",
         "pair.grad_y", "self_value_grad.grad", "grad_pair.x", "grad_pair.y")


def _sample(n, dim, dtype=torch.float32):
    x = torch.randn(n, dim, device="cuda", dtype=torch.float64)
    return (x - x.mean(0)).to(dtype) if n > 1 else x.to(dtype)


def ref_sum(x, y, gamma=GAMMA):
    """sum_ij k(|x_i - y_j|^2) in float64, bounded memory (no n*m buffer)."""
    return reference.kernel_sum_blocked(x.detach().double(), y.detach().double(), gamma)


def ref_grad(x, y, gamma=GAMMA):
    """d/dx sum_ij k(|x_i - y_j|^2) with y held fixed, in float64, bounded memory."""
    xd = x.detach().double().requires_grad_()
    return torch.autograd.grad(reference.kernel_sum_blocked(xd, y.detach().double(), gamma), xd)[0]


def run_ops(x, y, gamma=GAMMA, precision="default"):
    """Every op on (x, y), the tuple-valued ones flattened into named entries."""
    lib = torch.ops.lcw_fast
    out = {"kernel_sum": lib.kernel_sum(x, y, gamma, precision),
           "kernel_sum_self": lib.kernel_sum_self(x, gamma, precision),
           "kernel_sum_grad": lib.kernel_sum_grad(x, y, gamma, precision),
           "kernel_sum_grad_yx": lib.kernel_sum_grad(y, x, gamma, precision),
           "kernel_sum_self_grad": lib.kernel_sum_self_grad(x, gamma, precision)}
    out["grad_pair.x"], out["grad_pair.y"] = lib.kernel_sum_grad_pair(x, y, gamma, precision)
    out["value_grad.value"], out["value_grad.grad"] = lib.kernel_sum_value_grad(x, y, gamma, precision)
    out["pair.value"], out["pair.grad_x"], out["pair.grad_y"] = lib.kernel_sum_value_grad_pair(x, y, gamma, precision)
    out["self_value_grad.value"], out["self_value_grad.grad"] = lib.kernel_sum_self_value_grad(x, gamma, precision)
    return out


def expected_ops(x, y, gamma=GAMMA):
    """The float64 reference of every entry of run_ops."""
    cross, self_sum = ref_sum(x, y, gamma), ref_sum(x, x, gamma)
    gx, gy, gs = ref_grad(x, y, gamma), ref_grad(y, x, gamma), 2.0 * ref_grad(x, x, gamma)
    return {"kernel_sum": cross, "kernel_sum_self": self_sum, "kernel_sum_grad": gx, "kernel_sum_grad_yx": gy,
            "kernel_sum_self_grad": gs, "grad_pair.x": gx, "grad_pair.y": gy, "value_grad.value": cross,
            "value_grad.grad": gx, "pair.value": cross, "pair.grad_x": gx, "pair.grad_y": gy,
            "self_value_grad.value": self_sum, "self_value_grad.grad": gs}


def _source(name, x, y):
    return y if name in ("kernel_sum_grad_yx", "pair.grad_y", "grad_pair.y") else x


def check_ops(x, y, gamma=GAMMA, precision="default", tol=None):
    """All ops on (x, y) against the float64 reference."""
    value_tol, grad_tol = tol or TOL[x.dtype]
    out, expected = run_ops(x, y, gamma, precision), expected_ops(x, y, gamma)
    for name, value in out.items():
        if name in GRADS:
            src = _source(name, x, y)
            assert value.dtype == src.dtype and value.shape == src.shape and value.is_contiguous(), name
            assert_close(value, expected[name], atol=math.inf, rel_l2=grad_tol, name=name)
        else:
            assert value.dtype == torch.float64 and value.shape == (), name
            assert_close(value, expected[name], rtol=value_tol, name=name)
    return out


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dim", [12, 64, 784])
def test_half_precision_inputs(dim, dtype):
    check_ops(_sample(257, dim, dtype), _sample(130, dim, dtype))


def test_large_latent_sample():
    """n = 65,537 (one past a power of two), D = 64: many tiles, tile splits and partial sums."""
    check_ops(_sample(65_537, 64), _sample(1_000, 64))


@pytest.mark.parametrize("dim", [64, 12288])
def test_fast_mode(dim):
    """precision="fast": plain TF32 products (fused tensor-core tiles, or TF32 GEMMs); errors stay
    small on centred data but are not float32-exact."""
    check_ops(_sample(200, dim), _sample(150, dim), precision="fast", tol=(1e-4, 1e-3))


def test_self_gradient_schedule_covers_each_pair_once():
    """n = 20,000 at D = 8: more tile groups than SMs, an odd group count (a bye in the circle
    method), diagonal and off-diagonal rounds; the one-pass self-sum against the reference."""
    x = _sample(20_000, 8)
    value, grad = torch.ops.lcw_fast.kernel_sum_self_value_grad(x, GAMMA, "default")
    assert_close(value, ref_sum(x, x), rtol=1e-5, name="value")
    assert_close(grad, 2.0 * ref_grad(x, x), atol=math.inf, rel_l2=1e-5, name="grad")


@pytest.mark.parametrize("dim", [12, 784])
def test_poisoned_buffers_are_fully_overwritten(dim, monkeypatch):
    monkeypatch.setenv("LCW_FAST_POISON", "1")
    check_ops(_sample(301, dim), _sample(99, dim))


def test_small_scratch_budget_uses_many_gram_blocks(monkeypatch):
    """A 32 KiB budget gives 64 x 64 pair blocks: row/column blocking, the self-sum triangle, GEMM accumulation."""
    monkeypatch.setenv("LCW_FAST_SCRATCH_BYTES", str(32 * 1024))
    monkeypatch.setenv("LCW_FAST_POISON", "1")
    check_ops(_sample(300, 784), _sample(200, 784))
    check_ops(_sample(150, 784, torch.float64), _sample(70, 784, torch.float64))


@pytest.mark.parametrize("n,m,dim", [(65_537, 4_099, 64), (1_000, 777, 256), (700, 500, 784)])
def test_bit_identical_over_two_runs(n, m, dim):
    x, y = _sample(n, dim), _sample(m, dim)
    first, second = run_ops(x, y), run_ops(x, y)
    for name in first:
        assert torch.equal(first[name], second[name]), name


@pytest.mark.parametrize("dim", [12, 784])
def test_runs_on_the_current_stream(dim):
    x, y = _sample(513, dim), _sample(200, dim)
    expected = run_ops(x, y)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = run_ops(x, y)
    torch.cuda.current_stream().wait_stream(side)
    for name in out:
        assert torch.equal(out[name], expected[name]), name


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_second_device():
    x, y = _sample(100, 12).to("cuda:1"), _sample(50, 12).to("cuda:1")
    out = torch.ops.lcw_fast.kernel_sum(x, y, GAMMA, "default")
    assert out.device == x.device
    assert_close(out, ref_sum(x, y), rtol=1e-5)


@pytest.mark.skipif(not HAS_TRITON_OPS, reason="the Triton backend (lcw_fast.triton_kernel_sum) is not present")
@pytest.mark.parametrize("n,m,dim", [(1, 5, 3), (127, 200, 12), (2_049, 1_000, 64), (130, 61, 784), (33, 47, 12288)])
def test_matches_triton_backend(n, m, dim):
    from lcw_fast import triton_kernel_sum  # noqa: F401  (registers torch.ops.lcw_fast_triton)

    tri = torch.ops.lcw_fast_triton
    x, y = _sample(n, dim), _sample(m, dim)
    out = run_ops(x, y)
    expected = {"kernel_sum": tri.kernel_sum(x, y, GAMMA, "default"),
                "kernel_sum_self": tri.kernel_sum_self(x, GAMMA, "default"),
                "kernel_sum_grad": tri.kernel_sum_grad(x, y, GAMMA, "default"),
                "kernel_sum_grad_yx": tri.kernel_sum_grad(y, x, GAMMA, "default"),
                "kernel_sum_self_grad": tri.kernel_sum_self_grad(x, GAMMA, "default")}
    for name, value in out.items():
        if name.endswith(("_grad", "_yx")):
            assert_close(value, expected[name], atol=math.inf, rel_l2=2e-5, name=name)
        else:
            assert_close(value, expected[name], rtol=2e-5, name=name)


def test_torch_compile_fullgraph():
    x, y = _sample(100, 12), _sample(80, 12)

    @torch.compile(fullgraph=True)
    def loss(a, b):
        return lcw_fast.cw_distance(a, b, gamma=0.5, backend="cuda")

    assert_close(loss(x, y), lcw_fast.cw_distance(x, y, gamma=0.5, backend="cuda"), rtol=1e-6)
