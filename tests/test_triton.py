"""Triton backend (torch.ops.lcw_fast_triton) against the float64 reference, under the CPU interpreter.

Without a GPU these run the kernels with TRITON_INTERPRET=1 (set by conftest.py) on small shapes with
the interpreter's single large-tile config; with a GPU they run on CUDA tensors. The same checks at
real sizes, with poisoned outputs, bf16 and TF32, live in test_triton_gpu.py.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lcw_fast
from lcw_fast import backends, reference
from helpers import assert_close, cw_distance_scale, cw_normality_scale, errors

pytestmark = pytest.mark.skipif(not backends.has_triton(), reason="triton is not installed")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
GAMMA = 0.37
F32_VALUE_RTOL = 1e-5  # of the sum, whose terms are all positive: the core issue's float32 bound
F32_GRAD_REL_L2 = 1e-5
F64_RTOL = 1e-10


@pytest.fixture(scope="module")
def tk():
    from lcw_fast import triton_kernel_sum

    return triton_kernel_sum


def lib():
    return torch.ops.lcw_fast_triton


def reference_sums(x, y, gamma):
    """(sum, d sum/dx, d sum/dy, self-sum of x, d self-sum/dx) in float64 by autograd of the reference."""
    xd = x.detach().double().requires_grad_()
    yd = y.detach().double().requires_grad_()
    pair = reference.kernel_sum(xd, yd, gamma)
    gx, gy = torch.autograd.grad(pair, (xd, yd))
    self_sum = reference.kernel_sum(xd, xd, gamma)
    (gs,) = torch.autograd.grad(self_sum, xd)
    return pair, gx, gy, self_sum, gs


def check_all_ops(x, y, gamma=GAMMA, precision="default"):
    exact = x.dtype == torch.float64
    vtol = F64_RTOL if exact else F32_VALUE_RTOL
    gtol = F64_RTOL if exact else F32_GRAD_REL_L2
    pair, gx, gy, self_sum, gs = reference_sums(x, y, gamma)
    ops = lib()
    assert_close(ops.kernel_sum(x, y, gamma, precision), pair, rtol=vtol, name="kernel_sum")
    assert_close(ops.kernel_sum_self(x, gamma, precision), self_sum, rtol=vtol, name="kernel_sum_self")
    grad_x = ops.kernel_sum_grad(x, y, gamma, precision)
    assert grad_x.dtype == x.dtype and grad_x.is_contiguous()
    assert_close(grad_x, gx, rel_l2=gtol, atol=float("inf"), name="kernel_sum_grad wrt x")
    assert_close(ops.kernel_sum_grad(y, x, gamma, precision), gy, rel_l2=gtol, atol=float("inf"),
                 name="kernel_sum_grad wrt y")
    # n = 1: the self-sum's gradient is exactly zero, so compare absolutely against the pair gradient scale.
    assert_close(ops.kernel_sum_self_grad(x, gamma, precision), gs, atol=gtol * gx.abs().max().item(),
                 rel_l2=gtol if x.shape[0] > 1 else None, name="kernel_sum_self_grad")


@pytest.mark.parametrize(
    "n, m, dim",
    [
        (1, 1, 2),  # a single point
        (1, 5, 3),
        (67, 45, 2),  # odd n, not a multiple of the tile; n != m; D = 2
        (131, 70, 3),  # more than two row tiles; D = 3
        (70, 131, 24),  # mid D, m > n
        (40, 29, 300),  # D > 256: the chunked large-D gradient
    ],
)
def test_ops_float32_match_float64_reference(tk, n, m, dim):
    x, y = torch.randn(n, dim, device=DEVICE), torch.randn(m, dim, device=DEVICE) + 0.3
    check_all_ops(x, y)


@pytest.mark.parametrize("n, m, dim", [(33, 20, 5), (20, 9, 260)])
def test_ops_float64_agree_to_1e10(tk, n, m, dim):
    x = torch.randn(n, dim, device=DEVICE, dtype=torch.float64)
    check_all_ops(x, torch.randn(m, dim, device=DEVICE, dtype=torch.float64))


def test_fast_precision_is_accepted_and_bad_precision_names_the_argument(tk):
    x, y = torch.randn(30, 6, device=DEVICE), torch.randn(20, 6, device=DEVICE)
    pair = reference_sums(x, y, GAMMA)[0]
    # Under the interpreter TF32 is not emulated, so "fast" is exact there; on a GPU see test_triton_gpu.py.
    tol = F32_VALUE_RTOL if backends.triton_interpreted() else 5e-3
    assert_close(lib().kernel_sum(x, y, GAMMA, "fast"), pair, rtol=tol, name="fast kernel_sum")
    with pytest.raises(ValueError, match="precision must be one of"):
        lib().kernel_sum(x, y, GAMMA, "tf32")


def test_non_contiguous_inputs(tk):
    x = torch.randn(9, 50, device=DEVICE).t()  # (50, 9), strides (1, 50)
    y = torch.randn(41, 18, device=DEVICE)[:, ::2]  # (41, 9), strides (18, 2)
    wide_x, wide_y = torch.randn(300, 31, device=DEVICE).t(), torch.randn(23, 600, device=DEVICE)[:, ::2]
    assert not x.is_contiguous() and not y.is_contiguous()
    check_all_ops(x, y)
    check_all_ops(wide_x, wide_y)  # D = 300: the large-D path with strided loads


def test_large_d_path_with_scratch_split_into_row_and_column_chunks(tk, monkeypatch):
    monkeypatch.setattr(tk, "SCRATCH_BYTES", 4 * 128 * 16)  # 16 columns x 128 rows of float32 w per chunk
    x, y = torch.randn(200, 257, device=DEVICE), torch.randn(37, 257, device=DEVICE)  # 2 x 3 chunks
    _, gx, gy, _, gs = reference_sums(x, y, GAMMA)
    assert_close(lib().kernel_sum_grad(x, y, GAMMA), gx, rel_l2=F32_GRAD_REL_L2, atol=float("inf"), name="grad x")
    assert_close(lib().kernel_sum_grad(y, x, GAMMA), gy, rel_l2=F32_GRAD_REL_L2, atol=float("inf"), name="grad y")
    assert_close(lib().kernel_sum_self_grad(x, GAMMA), gs, rel_l2=F32_GRAD_REL_L2, atol=float("inf"), name="self")


@pytest.mark.parametrize("wrt", ["x", "y", "both"])
def test_autograd_of_the_ops_wrt_x_y_or_both(tk, wrt):
    x = torch.randn(45, 7, device=DEVICE, requires_grad=wrt in ("x", "both"))
    y = torch.randn(38, 7, device=DEVICE, requires_grad=wrt in ("y", "both"))
    _, gx, gy, _, _ = reference_sums(x, y, GAMMA)
    total = lib().kernel_sum(x, y, GAMMA) * 0.5
    wanted = [(t, 0.5 * g) for t, g in ((x, gx), (y, gy)) if t.requires_grad]
    grads = torch.autograd.grad(total, [t for t, _ in wanted])
    for got, (_, expected) in zip(grads, wanted):
        assert_close(got, expected, rel_l2=F32_GRAD_REL_L2, atol=float("inf"), name=f"grad wrt {wrt}")


def test_public_api_with_backend_triton(tk):
    x = torch.randn(77, 5, device=DEVICE, requires_grad=True)
    y = (torch.randn(52, 5, device=DEVICE) * 1.5 + 0.5).requires_grad_()
    xd, yd = x.detach().double().requires_grad_(), y.detach().double().requires_grad_()
    gamma_z = lcw_fast.normality_gamma(x.shape[0])
    for got_fn, ref_fn, inputs, ref_inputs, scale in [
        (lambda a, b: lcw_fast.cw_distance(a, b, 0.2, backend="triton"),
         lambda a, b: reference.cw_distance(a, b, 0.2), (x, y), (xd, yd), cw_distance_scale(x, y, 0.2)),
        (lambda a: lcw_fast.cw_normality(a, backend="triton"),
         lambda a: reference.cw_normality(a, gamma_z), (x,), (xd,), cw_normality_scale(x, gamma_z)),
    ]:
        got, expected = got_fn(*inputs), ref_fn(*ref_inputs)
        assert abs(got.item() - expected.item()) <= F32_VALUE_RTOL * scale
        for g, e in zip(torch.autograd.grad(got, inputs), torch.autograd.grad(expected, ref_inputs)):
            assert_close(g, e, rel_l2=F32_GRAD_REL_L2, atol=float("inf"), name="public grad")


def test_opcheck(tk):
    x = torch.randn(19, 4, device=DEVICE, requires_grad=True)
    y = torch.randn(11, 4, device=DEVICE, requires_grad=True)
    ops = lib()
    torch.library.opcheck(ops.kernel_sum, (x, y, GAMMA, "default"))
    torch.library.opcheck(ops.kernel_sum_self, (x, GAMMA, "default"))
    torch.library.opcheck(ops.kernel_sum_grad, (x.detach(), y.detach(), GAMMA, "default"))
    torch.library.opcheck(ops.kernel_sum_self_grad, (x.detach(), GAMMA, "fast"))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy, under the interpreter
@pytest.mark.parametrize("n, dim", [(1, 3), (70, 4), (20, 290)])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_inf_give_nan(tk, n, dim, bad):
    x, y = torch.randn(n, dim, device=DEVICE), torch.randn(5, dim, device=DEVICE)
    x[n // 2, 1] = bad
    ops = lib()
    assert ops.kernel_sum(x, y, GAMMA).isnan().item()
    assert ops.kernel_sum_self(x, GAMMA).isnan().item()
    assert ops.kernel_sum_grad(x, y, GAMMA)[n // 2].isnan().all().item()
    assert ops.kernel_sum_grad(y, x, GAMMA).isnan().all().item()
    assert ops.kernel_sum_self_grad(x, GAMMA)[n // 2].isnan().all().item()


def test_poisoned_buffers_are_fully_overwritten(tk, monkeypatch):
    monkeypatch.setattr(tk, "POISON", True)
    check_all_ops(torch.randn(70, 6, device=DEVICE), torch.randn(65, 6, device=DEVICE))
    check_all_ops(torch.randn(30, 280, device=DEVICE), torch.randn(17, 280, device=DEVICE))


def test_centring_removes_the_cancellation_of_shifted_data(tk):
    """Data far from the origin (x + 100): the Gram-based distance cancels |x|^2 ~ 1e4 D, so the public
    API centres by the common mean first. Value errors are in units of the CW terms' scale."""
    n, m = 60, 50
    x, y = torch.randn(n, 16, device=DEVICE) + 100.0, torch.randn(m, 16, device=DEVICE) + 100.3
    xd = x.double().requires_grad_()
    expected = reference.cw_distance(xd, y.double(), GAMMA)
    (expected_grad,) = torch.autograd.grad(expected, xd)
    scale = cw_distance_scale(x, y, GAMMA)

    xc = x.clone().requires_grad_()
    centred = lcw_fast.cw_distance(xc, y, GAMMA, backend="triton")
    (centred_grad,) = torch.autograd.grad(centred, xc)
    ops = lib()
    raw = reference.C0 * (ops.kernel_sum_self(x, GAMMA) / n**2 + ops.kernel_sum_self(y, GAMMA) / m**2
                          - 2 * ops.kernel_sum(x, y, GAMMA) / (n * m))
    raw_grad = reference.C0 * (ops.kernel_sum_self_grad(x, GAMMA) / n**2 - 2 * ops.kernel_sum_grad(x, y, GAMMA) / (n * m))

    errs = {name: (abs(v.item() - expected.item()) / scale, errors(g, expected_grad)[2])
            for name, v, g in (("centred", centred, centred_grad), ("uncentred", raw, raw_grad))}
    print("shifted data: value error / term scale, grad rel L2:", errs)
    assert errs["centred"][0] <= F32_VALUE_RTOL and errs["centred"][1] <= F32_GRAD_REL_L2
    assert errs["uncentred"][1] > 10 * errs["centred"][1]


def test_kernels_compile_for_sm90_without_a_gpu():
    """The kernels lower through PTX to an sm_90 cubin (triton.compile with a GPUTarget, ptxas included)."""
    script = Path(__file__).with_name("triton_sm90_compile.py")
    env = dict(os.environ, TRITON_INTERPRET="0")
    run = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("ok ") == 3, run.stdout
