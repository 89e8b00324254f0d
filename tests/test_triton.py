"""Triton backend (torch.ops.lcw_fast_triton): its raw ops and schedules against the blocked float64 reference.

Without a GPU these run the kernels with TRITON_INTERPRET=1 (set by conftest.py) on small shapes with the
interpreter's single 64 x 64 config; with a GPU they run on CUDA tensors. Backend-specific checks live here:
bands and column splits, the self-sum triangle, per-program gradient slots and their fixed reduction order,
every GPU tile shape, the scratch budget, poisoned buffers, the compile report. The same at real sizes,
with bf16 and TF32, is in test_triton_gpu.py.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lcw_fast
from lcw_fast import backends, reference
from helpers import assert_close
from lcw_fast.reference import cw_distance_scale, errors

pytestmark = pytest.mark.skipif(not backends.has_triton(), reason="triton is not installed")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
GAMMA = 0.37
F32_VALUE_RTOL = 1e-5  # of the sum, whose terms are all positive: the term scale
F32_GRAD_REL_L2 = 1e-5
F64_RTOL = 1e-10
OPS = ("kernel_sum", "kernel_sum_self", "kernel_sum_value_grad", "kernel_sum_value_grad_pair",
       "kernel_sum_self_value_grad", "kernel_sum_grad", "kernel_sum_self_grad")


@pytest.fixture(scope="module")
def tk():
    from lcw_fast import triton_blocked, triton_common, triton_fused, triton_kernel_sum  # noqa: F401

    return triton_kernel_sum


def lib():
    return torch.ops.lcw_fast_triton


def reference_sums(x, y, gamma=GAMMA):
    """(sum, d/dx, d/dy, self-sum of x, d self-sum/dx) in float64, blocked reference."""
    xd = x.detach().double().requires_grad_()
    yd = y.detach().double().requires_grad_()
    pair = reference.kernel_sum_blocked(xd, yd, gamma)
    gx, gy = torch.autograd.grad(pair, (xd, yd))
    self_sum = reference.kernel_sum_blocked(xd, xd, gamma)
    (gs,) = torch.autograd.grad(self_sum, xd)
    return pair.detach(), gx, gy, self_sum.detach(), gs


def all_results(x, y, precision="default"):
    """{name: (value or None, [gradients])} from every op."""
    ops = lib()
    v, gx = ops.kernel_sum_value_grad(x, y, GAMMA, precision)
    vp, px, py = ops.kernel_sum_value_grad_pair(x, y, GAMMA, precision)
    vs, gs = ops.kernel_sum_self_value_grad(x, GAMMA, precision)
    return {
        "kernel_sum": (ops.kernel_sum(x, y, GAMMA, precision), []),
        "kernel_sum_self": (ops.kernel_sum_self(x, GAMMA, precision), []),
        "kernel_sum_value_grad": (v, [gx]),
        "kernel_sum_value_grad_pair": (vp, [px, py]),
        "kernel_sum_self_value_grad": (vs, [gs]),
        "kernel_sum_grad": (None, [ops.kernel_sum_grad(x, y, GAMMA, precision)]),
        "kernel_sum_self_grad": (None, [ops.kernel_sum_self_grad(x, GAMMA, precision)]),
    }


def check_all_ops(x, y, precision="default"):
    exact = x.dtype == torch.float64
    vtol = F64_RTOL if exact else F32_VALUE_RTOL
    gtol = F64_RTOL if exact else F32_GRAD_REL_L2
    pair, gx, gy, self_sum, gs = reference_sums(x, y)
    expected = {"kernel_sum": (pair, []), "kernel_sum_self": (self_sum, []), "kernel_sum_value_grad": (pair, [gx]),
                "kernel_sum_value_grad_pair": (pair, [gx, gy]), "kernel_sum_self_value_grad": (self_sum, [gs]),
                "kernel_sum_grad": (None, [gx]), "kernel_sum_self_grad": (None, [gs])}
    for name, (value, grads) in all_results(x, y, precision).items():
        want_value, want_grads = expected[name]
        if want_value is not None:
            assert value.dtype == torch.float64 and value.dim() == 0, name
            assert_close(value, want_value, rtol=vtol, name=name)
        for got, want, source in zip(grads, want_grads, (x, y)):
            assert got.dtype == source.dtype and got.is_contiguous() and got.shape == source.shape, name
            # n = 1: a self-sum's gradient is exactly zero; compare it on the pair gradient's scale.
            if want.norm() > 0:
                assert_close(got, want, rel_l2=gtol, atol=float("inf"), name=name)
            else:
                assert_close(got, want, atol=gtol * gx.abs().max().item(), name=name)


def test_fast_precision_is_accepted_and_bad_arguments_are_named(tk):
    x, y = torch.randn(30, 6, device=DEVICE), torch.randn(20, 6, device=DEVICE)
    pair = reference_sums(x, y)[0]
    # Under the interpreter TF32 is not emulated, so "fast" is exact there; on a GPU see test_triton_gpu.py.
    tol = F32_VALUE_RTOL if backends.triton_interpreted() else 5e-3
    assert_close(lib().kernel_sum(x, y, GAMMA, "fast"), pair, rtol=tol, name="fast kernel_sum")
    with pytest.raises(ValueError, match="precision must be one of"):
        lib().kernel_sum(x, y, GAMMA, "tf32")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        for call in (lambda: lib().kernel_sum(x, y, bad), lambda: lib().kernel_sum_self_value_grad(x, bad),
                     lambda: lib().kernel_sum_value_grad_pair(x, y, bad)):
            with pytest.raises(ValueError, match="gamma must be positive and finite"):
                call()
    with pytest.raises(ValueError, match="same dimension"):
        lib().kernel_sum_value_grad(x, torch.randn(5, 7, device=DEVICE), GAMMA)


def _more_programs(monkeypatch, tk, count):
    """Make the launchers aim at `count` programs (one per band under the interpreter by default)."""
    from lcw_fast import triton_common

    monkeypatch.setattr(triton_common, "target_programs", lambda device: count)


@pytest.mark.parametrize("programs", [4, 9, 40])
def test_bands_and_column_splits_match_the_reference(tk, monkeypatch, programs):
    """Several bands per row and column: gradient slots summed in order, the self-sum's triangle of bands."""
    _more_programs(monkeypatch, tk, programs)
    check_all_ops(torch.randn(300, 6, device=DEVICE), torch.randn(200, 6, device=DEVICE) - 0.2)


def test_band_layout_covers_every_pair_once_and_every_slot(tk):
    from lcw_fast import triton_fused as tf

    q = tf._quantum()
    for n, m in ((1, 1), (300, 200), (5000, 70), (64, 4096)):
        for self_sum, grad in ((False, "none"), (False, "x"), (False, "both"), (True, "none"), (True, "both")):
            if self_sum:
                m = n
            for target in (1, 7, 528):
                rows, cols, g, h = tf.bands(n, m, 16, self_sum, grad, target, 256 * 2**20)
                assert rows % q == 0 and cols % q == 0
                assert (g - 1) * rows < n <= g * rows and (h - 1) * cols < m <= h * cols  # no empty band
                if self_sum:
                    assert rows == cols and g == h
    # the scratch budget bounds the slots: slab bytes = slots * n * D * 4
    rows, cols, g, h = tf.bands(4096, 4096, 64, False, "both", 528, budget=16 * 4096 * 64 * 4)
    assert (g + h) * 4096 * 64 * 4 <= 16 * 4096 * 64 * 4
    rows, cols, g, h = tf.bands(4096, 4096, 64, True, "both", 528, budget=8 * 4096 * 64 * 4)
    assert (g + 1) * 4096 * 64 * 4 <= 8 * 4096 * 64 * 4


def test_results_are_bitwise_reproducible_with_split_bands(tk, monkeypatch):
    _more_programs(monkeypatch, tk, 9)
    x, y = torch.randn(200, 5, device=DEVICE), torch.randn(150, 5, device=DEVICE)
    first, second = all_results(x, y), all_results(x, y)
    for name in first:
        for a, b in zip([first[name][0]] + first[name][1], [second[name][0]] + second[name][1]):
            if a is not None:
                assert torch.equal(a, b), name


def test_scratch_budget_splits_large_d_into_blocks(tk, monkeypatch):
    monkeypatch.setenv("LCW_FAST_SCRATCH_BYTES", str(4 * 128 * 16))  # 16 columns x 128 rows of float32 w
    from lcw_fast import triton_blocked as tb

    assert tb.block_sides(200, 37, False, 4 * 128 * 16, 4) == (128, 16)
    check_all_ops(torch.randn(200, 257, device=DEVICE), torch.randn(37, 257, device=DEVICE))  # 2 x 3 blocks
    with pytest.raises(ValueError, match="LCW_FAST_SCRATCH_BYTES"):
        monkeypatch.setenv("LCW_FAST_SCRATCH_BYTES", "lots")
        lib().kernel_sum_grad(torch.randn(5, 3, device=DEVICE), torch.randn(4, 3, device=DEVICE), GAMMA)


def test_self_sum_blocks_cover_the_triangle(tk, monkeypatch):
    """A self-sum's large-D blocks: B >= A only, off-diagonal blocks counted twice and updating both sides."""
    from lcw_fast import triton_blocked as tb

    monkeypatch.setattr(tb, "MIN_SELF_BLOCK", 64)
    assert tb.block_sides(1000, 1000, True, 256 * 2**20, 4) == (128, 128)
    x = torch.randn(150, 270, device=DEVICE)
    monkeypatch.setenv("LCW_FAST_SCRATCH_BYTES", str(4 * 64 * 64))  # blocks of 64: 3 x 3, 6 visited
    _, _, _, self_sum, gs = reference_sums(x, x)
    value, grad = lib().kernel_sum_self_value_grad(x, GAMMA)
    assert_close(value, self_sum, rtol=F32_VALUE_RTOL, name="self value")
    assert_close(grad, gs, rel_l2=F32_GRAD_REL_L2, atol=float("inf"), name="self grad")


def test_poisoned_buffers_are_fully_overwritten(tk, monkeypatch):
    monkeypatch.setenv("LCW_FAST_POISON", "1")
    _more_programs(monkeypatch, tk, 9)
    check_all_ops(torch.randn(200, 6, device=DEVICE), torch.randn(150, 6, device=DEVICE))
    check_all_ops(torch.randn(30, 280, device=DEVICE), torch.randn(17, 280, device=DEVICE))


def test_autotune_keys_hold_a_size_bucket(tk):
    from lcw_fast import triton_blocked as tb
    from lcw_fast import triton_common as tc
    from lcw_fast import triton_fused as tf

    for kernel in (tf._fused_kernel, tb._sum_kernel, tb._weights_kernel, tb._wy_kernel):
        assert "size_bucket" in kernel.keys
    assert tc.size_bucket(4096, 4096) == 24


def test_centring_removes_the_cancellation_of_shifted_data(tk):
    """Data far from the origin (x + 100): the Gram-based distance cancels |x|^2 ~ 1e4 D, so the public
    API centres by the common mean first. Value errors are in units of the CW terms' scale."""
    n, m = 60, 50
    x, y = torch.randn(n, 16, device=DEVICE) + 100.0, torch.randn(m, 16, device=DEVICE) + 100.3
    xd = x.double().requires_grad_()
    expected = reference.cw_distance_blocked(xd, y.double(), GAMMA)
    (expected_grad,) = torch.autograd.grad(expected, xd)
    scale = cw_distance_scale(x, y, GAMMA)

    xc = x.clone().requires_grad_()
    centred = lcw_fast.cw_distance(xc, y, GAMMA, backend="triton")
    (centred_grad,) = torch.autograd.grad(centred, xc)
    ops = lib()
    self_value, self_grad = ops.kernel_sum_self_value_grad(x, GAMMA)
    cross_value, cross_grad = ops.kernel_sum_value_grad(x, y, GAMMA)
    raw = reference.C0 * (self_value / n**2 + ops.kernel_sum_self(y, GAMMA) / m**2 - 2 * cross_value / (n * m))
    raw_grad = reference.C0 * (self_grad / n**2 - 2 * cross_grad / (n * m))

    errs = {name: (abs(v.item() - expected.item()) / scale, errors(g, expected_grad)[2])
            for name, v, g in (("centred", centred, centred_grad), ("uncentred", raw, raw_grad))}
    print("shifted data: value error / term scale, grad rel L2:", errs)
    assert errs["centred"][0] <= F32_VALUE_RTOL and errs["centred"][1] <= F32_GRAD_REL_L2
    assert errs["uncentred"][1] > 10 * errs["centred"][1]


def _use_configs(monkeypatch, kernel, configs):
    monkeypatch.setattr(kernel, "configs", configs)


def test_every_gpu_tile_shape_matches_the_reference(tk, monkeypatch):
    """The interpreter runs one 64 x 64 config; the GPU autotuner may pick any config of the tables,
    including BLOCK_N < BLOCK_M, where a self-sum's diagonal block spans several column tiles. float64 at
    D = 9 takes the fused kernel for every op (both-sided gradients included), float32 for the value and
    grad_x, the blocked kernels for the rest and for D = 260."""
    from lcw_fast import triton_blocked as tb
    from lcw_fast import triton_common as tc
    from lcw_fast import triton_fused as tf

    _more_programs(monkeypatch, tk, 4)

    def check_ops(x, y, names):
        tol = F64_RTOL if x.dtype == torch.float64 else F32_GRAD_REL_L2
        pair, gx, gy, self_sum, gs = reference_sums(x, y)
        results = {name: getattr(lib(), name)(*((x,) if "self" in name else (x, y)), GAMMA) for name in names}
        expected = {"kernel_sum": (pair,), "kernel_sum_self": (self_sum,), "kernel_sum_value_grad": (pair, gx),
                    "kernel_sum_value_grad_pair": (pair, gx, gy), "kernel_sum_self_value_grad": (self_sum, gs)}
        for name, got in results.items():
            got = got if isinstance(got, tuple) else (got,)
            assert_close(got[0], expected[name][0], rtol=tol, name=name)
            for g, e in zip(got[1:], expected[name][1:]):
                assert_close(g, e, rel_l2=tol, atol=float("inf"), name=name)

    x, y = torch.randn(140, 9, device=DEVICE), torch.randn(75, 9, device=DEVICE)
    shapes = sorted({s[:2] for table in tf.FUSED_SHAPES.values() for v in table.values() for s in v})
    for bm, bn in shapes:
        _use_configs(monkeypatch, tf._fused_kernel, tc.configs([(bm, bn, 4, 2)], interpreted=False))
        check_ops(x, y, ["kernel_sum", "kernel_sum_value_grad"])
        if bn <= bm:  # a self-sum never gets a wider tile (default_configs)
            check_ops(x.double(), y.double(), ["kernel_sum_self", "kernel_sum_value_grad_pair",
                                               "kernel_sum_self_value_grad"])
    wide_x, wide_y = torch.randn(100, 260, device=DEVICE), torch.randn(45, 260, device=DEVICE)
    for kernel, table, names in (
            (tb._sum_kernel, tb.SUM_SHAPES, ["kernel_sum", "kernel_sum_self"]),
            (tb._weights_kernel, tb.WEIGHT_SHAPES, ["kernel_sum_value_grad_pair", "kernel_sum_self_value_grad"]),
            (tb._wy_kernel, tb.WY_SHAPES, ["kernel_sum_value_grad_pair", "kernel_sum_self_value_grad"])):
        for shape in table["fp32"] + table["fp64"]:
            _use_configs(monkeypatch, kernel, tc.configs([shape], interpreted=False))
            check_ops(wide_x, wide_y, names)


def test_compile_report_for_sm90(tmp_path):
    """The hot kernels lower through PTX to sm_90 cubins with ptxas (no GPU needed), with the launches'
    specialisation: no spills in default configs, every product on wgmma for float32 and bf16."""
    script = Path(__file__).with_name("triton_sm90_compile.py")
    report = tmp_path / "report.json"
    env = dict(os.environ, TRITON_INTERPRET="0")
    run = subprocess.run([sys.executable, str(script), "--realistic", "--quick", "--json", str(report)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = json.loads(report.read_text())
    assert rows and all(set(row) >= {"kernel", "config", "D", "default", "registers", "spill_bytes",
                                     "shared_bytes", "wgmma"} for row in rows)
    for row in rows:
        if row["default"] and row["D"] <= 256:
            assert row["spill_bytes"] == 0, row
        if row["dtype"] != "fp64":
            assert row["wgmma"], row
