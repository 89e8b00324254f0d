"""The CUDA kernels without a GPU: they were compiled, linked against cuBLAS, registered under the
CUDA dispatch key, CPU tensors never reach them, and their sm_90 cubins use tensor cores and do not
spill (tests/cuda_sm90_report.py; see test_cuda_gpu.py for their numbers)."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import lcw_fast
from lcw_fast import backends, ops

OPS = ops.ALL_OPS
REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda_sm90_report.py")
CUDA_BUILD_EXPECTED = (ops.has_extension() and os.environ.get("LCW_FAST_CPU_ONLY", "") != "1"
                       and (shutil.which("nvcc") or os.path.exists("/usr/local/cuda/bin/nvcc")))
needs_cuda_build = pytest.mark.skipif(not CUDA_BUILD_EXPECTED,
                                      reason="the extension is built without CUDA here (no nvcc or LCW_FAST_CPU_ONLY=1)")


def _op_args(name, x):
    return (x, 1.0, "default") if "self" in name else (x, x, 1.0, "default")


@needs_cuda_build
def test_extension_has_cuda_kernels_for_every_op():
    assert ops.has_cuda_kernels()
    for name in OPS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"lcw_fast::{name}", "CUDA"), name


@needs_cuda_build
@pytest.mark.parametrize("name", OPS)
def test_cuda_kernel_is_ours_and_rejects_cpu_tensors(name):
    """Calling the CUDA kernel itself (redispatch to the CUDA key) reaches csrc/cuda's argument checks."""
    op = getattr(torch.ops.lcw_fast, name).default
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    with pytest.raises(RuntimeError, match="x must be a CUDA tensor, got cpu"):
        op.redispatch(keys, *_op_args(name, torch.randn(5, 3)))


@pytest.mark.skipif(not ops.has_extension(), reason="the C++ extension is not built")
@pytest.mark.parametrize("name", OPS)
def test_cpu_tensors_dispatch_to_the_cpu_key(name):
    """CPU tensors go to the CPU kernel where one is registered; otherwise the dispatcher says so."""
    op = getattr(torch.ops.lcw_fast, name)
    args = _op_args(name, torch.randn(5, 3, dtype=torch.float64))
    if torch._C._dispatch_has_kernel_for_dispatch_key(f"lcw_fast::{name}", "CPU"):
        out = op(*args)
        for t in out if isinstance(out, tuple) else (out,):
            assert t.device.type == "cpu" and torch.isfinite(t).all()
    else:
        with pytest.raises(NotImplementedError, match="'CPU' backend"):
            op(*args)


@needs_cuda_build
def test_extension_links_cublas():
    """_C needs cuBLAS symbols from libcublas, and importing it (RTLD_NOW) resolved them."""
    so = ops._C.__file__
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm is not installed")
    undefined = subprocess.run([nm, "-D", "--undefined-only", so], capture_output=True, text=True, check=True).stdout
    assert "cublasGemmEx" in undefined
    with open("/proc/self/maps") as maps:
        assert "libcublas.so" in maps.read()


@needs_cuda_build
def test_compile_report_no_spills_and_tensor_cores_in_every_pair_kernel(tmp_path):
    """tests/cuda_sm90_report.py on the built extension: exit 0 (no kernel spills), and the fused
    kernels (every instantiation: 4 precisions x 5 padded D, value and value+gradient) run on tensor cores."""
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, REPORT, "--so", ops._C.__file__, "--json", str(out)], capture_output=True,
                          text=True)
    if proc.returncode == 2 and "no cuobjdump" in proc.stderr:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    assert all(r["spill_bytes"] == 0 for r in rows)
    fused = [r for r in rows if r["kernel"].startswith(("fused_value_kernel", "fused_value_grad_kernel"))]
    assert len(fused) == 2 * 4 * 5, [r["kernel"] for r in fused]
    assert all(r["tensor_core"] for r in fused), [r["kernel"] for r in fused if not r["tensor_core"]]
    assert all(set(r) >= {"kernel", "registers", "spill_bytes", "shared_bytes", "tensor_core"} for r in rows)


def _report_module():
    spec = importlib.util.spec_from_file_location("cuda_sm90_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compile_report_parses_cuobjdump_output():
    """The report's parsing on cuobjdump text of the shapes it prints (runs without nvcc)."""
    report = _report_module()
    usage = """
 Function _Z3fooPf:
  REG:178 STACK:0 SHARED:1152 LOCAL:0 CONSTANT[0]:592 TEXTURE:0 SURFACE:0 SAMPLER:0
 Function _Z3barPf:
  REG:64 STACK:8 SHARED:0 LOCAL:4 CONSTANT[0]:552 TEXTURE:0 SURFACE:0 SAMPLER:0
"""
    assert report.parse_resources(usage) == {"_Z3fooPf": (178, 0, 1152, 0), "_Z3barPf": (64, 8, 0, 4)}
    sass = """
		Function : _Z3fooPf
        /*0a10*/                   HMMA.1684.F32.TF32 R24, R8, R20, R24 ;
		Function : _Z3barPf
        /*0010*/                   FFMA R1, R2, R3, R4 ;
"""
    assert report.parse_tensor_core(sass) == {"_Z3fooPf": True, "_Z3barPf": False}
    name = ("void lcw_fast::cuda::(anonymous namespace)::fused_value_grad_kernel<(lcw_fast::cuda::Prec)2, 64>"
            "(lcw_fast::cuda::(anonymous namespace)::Args<(lcw_fast::cuda::Prec)2>, bool)")
    assert report.short_name(name) == "fused_value_grad_kernel<bf16, 64>"


def test_cuda_backend_needs_cuda_tensors():
    x, y = torch.randn(8, 3), torch.randn(6, 3)
    with pytest.raises(ValueError, match="backend='cuda' needs cuda tensors, got tensors on cpu"):
        lcw_fast.cw_distance(x, y, gamma=1.0, backend="cuda")
    with pytest.raises(ValueError, match="backend='cuda' needs cuda tensors, got tensors on cpu"):
        lcw_fast.kernel_sum(x, gamma=1.0, backend="cuda")


def test_auto_picks_cuda_only_where_it_measured_faster(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(ops, "has_cuda_kernels", lambda: True)
    monkeypatch.setattr(backends, "has_triton", lambda: True)
    monkeypatch.setattr(backends, "CUDA_FASTER_DIMS", ((2, 256),))
    assert backends._auto_name(cuda, 64) == "cuda"
    assert backends._auto_name(cuda, 784) == "triton"
    monkeypatch.setattr(backends, "CUDA_FASTER_DIMS", ())
    assert backends._auto_name(cuda, 64) == "triton"
    monkeypatch.setattr(backends, "has_triton", lambda: False)
    assert backends._auto_name(cuda, 784) == "cuda"
