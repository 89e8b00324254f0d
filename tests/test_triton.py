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
from helpers import assert_close

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


def test_fast_precision_is_accepted_and_bad_precision_names_the_argument(tk):
    x, y = torch.randn(30, 6, device=DEVICE), torch.randn(20, 6, device=DEVICE)
    pair = reference_sums(x, y, GAMMA)[0]
    # Under the interpreter TF32 is not emulated, so "fast" is exact there; on a GPU see test_triton_gpu.py.
    tol = F32_VALUE_RTOL if backends.triton_interpreted() else 5e-3
    assert_close(lib().kernel_sum(x, y, GAMMA, "fast"), pair, rtol=tol, name="fast kernel_sum")
    with pytest.raises(ValueError, match="precision must be one of"):
        lib().kernel_sum(x, y, GAMMA, "tf32")


def test_large_d_path_with_scratch_split_into_row_and_column_chunks(tk, monkeypatch):
    monkeypatch.setattr(tk, "SCRATCH_BYTES", 4 * 128 * 16)  # 16 columns x 128 rows of float32 w per chunk
    x, y = torch.randn(200, 257, device=DEVICE), torch.randn(37, 257, device=DEVICE)  # 2 x 3 chunks
    _, gx, gy, _, gs = reference_sums(x, y, GAMMA)
    assert_close(lib().kernel_sum_grad(x, y, GAMMA), gx, rel_l2=F32_GRAD_REL_L2, atol=float("inf"), name="grad x")
    assert_close(lib().kernel_sum_grad(y, x, GAMMA), gy, rel_l2=F32_GRAD_REL_L2, atol=float("inf"), name="grad y")
    assert_close(lib().kernel_sum_self_grad(x, GAMMA), gs, rel_l2=F32_GRAD_REL_L2, atol=float("inf"), name="self")


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
    scale = reference.cw_distance_scale(x, y, GAMMA)

    xc = x.clone().requires_grad_()
    centred = lcw_fast.cw_distance(xc, y, GAMMA, backend="triton")
    (centred_grad,) = torch.autograd.grad(centred, xc)
    ops = lib()
    raw = reference.C0 * (ops.kernel_sum_self(x, GAMMA) / n**2 + ops.kernel_sum_self(y, GAMMA) / m**2
                          - 2 * ops.kernel_sum(x, y, GAMMA) / (n * m))
    raw_grad = reference.C0 * (ops.kernel_sum_self_grad(x, GAMMA) / n**2 - 2 * ops.kernel_sum_grad(x, y, GAMMA) / (n * m))

    errs = {name: (abs(v.item() - expected.item()) / scale, reference.errors(g, expected_grad)[2])
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
    assert run.stdout.count("ok ") == 4, run.stdout


def _tile_shapes(tk, kind):
    return sorted({shape[:2] for shape in tk._GPU_SHAPES[kind]})


def test_every_gpu_tile_shape_matches_the_reference(tk, monkeypatch):
    """The interpreter runs one 64 x 64 config; the GPU autotuner may pick any tile shape, including
    non-square gradient tiles, whose self-sum diagonal lies off the tile's main diagonal."""
    x, y = torch.randn(70, 9, device=DEVICE), torch.randn(45, 9, device=DEVICE)
    wide_x, wide_y = torch.randn(70, 260, device=DEVICE), torch.randn(45, 260, device=DEVICE)
    pair, gx, _, self_sum, gs = reference_sums(x, y, GAMMA)
    wide_gx, wide_gs = reference_sums(wide_x, wide_y, GAMMA)[1::3]
    ops = lib()

    def use(kernel, bm, bn):
        monkeypatch.setattr(kernel, "configs", [tk.triton.Config({"BLOCK_M": bm, "BLOCK_N": bn})])
        return f"{bm}x{bn} tiles"

    for bm, bn in _tile_shapes(tk, "sum"):
        configs = [tk.triton.Config({"BLOCK_M": bm, "BLOCK_N": bn})]
        monkeypatch.setattr(tk, "_SUM_CONFIGS", configs)
        monkeypatch.setattr(tk._sum_kernel, "configs", configs)
        assert_close(ops.kernel_sum(x, y, GAMMA), pair, rtol=F32_VALUE_RTOL, name=f"sum {bm}x{bn}")
        assert_close(ops.kernel_sum_self(x, GAMMA), self_sum, rtol=F32_VALUE_RTOL, name=f"self-sum {bm}x{bn}")
    for bm, bn in _tile_shapes(tk, "grad"):
        name = "fused grad, " + use(tk._fused_grad_kernel, bm, bn)
        assert_close(ops.kernel_sum_grad(x, y, GAMMA), gx, rel_l2=F32_GRAD_REL_L2, atol=float("inf"), name=name)
        assert_close(ops.kernel_sum_self_grad(x, GAMMA), gs, rel_l2=F32_GRAD_REL_L2, atol=float("inf"), name=name)
    for bm, bn in _tile_shapes(tk, "weights"):
        name = "large-D grad, " + use(tk._weights_kernel, bm, bn)
        assert_close(ops.kernel_sum_grad(wide_x, wide_y, GAMMA), wide_gx, rel_l2=F32_GRAD_REL_L2, atol=float("inf"),
                     name=name)
        assert_close(ops.kernel_sum_self_grad(wide_x, GAMMA), wide_gs, rel_l2=F32_GRAD_REL_L2, atol=float("inf"),
                     name=name)
