"""Compiles every Triton kernel of lcw_fast.triton_kernel_sum for sm_90 (H100) without a GPU.

    python tests/triton_sm90_compile.py [--quick] [--all-configs]

Each kernel goes through the full pipeline (TTIR -> TTGIR -> LLIR -> PTX -> cubin by ptxas) for every
autotune config and the dtypes and precisions it is launched with; prints one line per variant
with the registers and spill bytes of its cubin. Run by tests/test_triton.py in a subprocess, since the
kernels must not be in interpreter mode here.
"""
import os
import re
import subprocess
import sys
import tempfile

os.environ["TRITON_INTERPRET"] = "0"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

from lcw_fast import triton_kernel_sum as tk  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
H100_SHARED_BYTES = 232448  # opt-in shared memory per block on sm_90
CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
ALL_CONFIGS = "--all-configs" in sys.argv  # default: the first autotune config of each variant
QUICK = "--quick" in sys.argv  # one variant of each kernel (what the test suite runs)
# Triton specialises integer arguments equal to 1, so contiguous inputs compile with unit strides.
CONTIGUOUS = {"sxd": 1, "syd": 1}
SCALARS = {"n": "i32", "m": "i32", "D": "i32", "row0": "i32", "col0": "i32", "sxn": "i64", "sxd": "i64",
           "syn": "i64", "syd": "i64", "son": "i64", "swn": "i64", "gamma_hi": "fp32", "gamma_lo": "fp32",
           "scale": "fp32"}
COMPUTE = {"fp32": triton.language.float32, "bf16": triton.language.float32, "fp64": triton.language.float64}


def signature(kernel, dtype, out_dtypes):
    """Pointer types for the inputs (x, y) and outputs, scalar types for the rest."""
    sig = {}
    for name in kernel.fn.arg_names:
        if name in CONTIGUOUS:
            sig[name] = "constexpr"
        elif name in ("x_ptr", "y_ptr"):
            sig[name] = f"*{dtype}"
        elif name in out_dtypes:
            sig[name] = out_dtypes[name]
        elif name in SCALARS:
            sig[name] = SCALARS[name]
        else:
            sig[name] = "constexpr"
    return sig


def variants():
    """(label, kernel, dtype, outputs, constexprs) for each launch the launchers can make."""
    for dtype, precision in (("fp32", "tf32x3"), ("fp32", "tf32"), ("bf16", "tf32x3"), ("fp64", "ieee")):
        compute = COMPUTE[dtype]
        acc = "fp64" if dtype == "fp64" else "fp32"
        common = {"PRECISION": precision, "COMPUTE": compute, **CONTIGUOUS}
        for self_sum in (False, True):
            yield ("sum", tk._sum_kernel, dtype, {"part_ptr": "*fp64"},
                   dict(common, SELF=self_sum, BLOCK_K=tk._block_k(4096)))
            yield ("weights", tk._weights_kernel, dtype, {"w_ptr": f"*{acc}"},
                   dict(common, SELF=self_sum, BLOCK_K=tk._block_k(4096)))
        for block_d in (16, 64, 256):
            yield (f"fused_grad D<={block_d}", tk._fused_grad_kernel, dtype, {"out_ptr": f"*{dtype}"},
                   dict(common, SELF=block_d == 64, BLOCK_D=block_d))


def resource_usage(cubin: bytes) -> str:
    """Registers and stack (spill) bytes of the compiled cubin, as cuobjdump reports them."""
    with tempfile.NamedTemporaryFile("wb", suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([CUOBJDUMP, "-res-usage", f.name], capture_output=True, text=True, check=True).stdout
    usage = re.search(r"REG:(\d+) STACK:(\d+)", out)
    return f"{usage.group(1)} registers, {usage.group(2)} bytes of stack (spills)" if usage else "usage unknown"


def quick_variants():
    """Self-sum and fused self-gradient in float32 default mode, and the bf16 large-D weights."""
    wanted = {("sum", "fp32", "tf32x3", True), ("fused_grad D<=64", "fp32", "tf32x3", True),
              ("weights", "bf16", "tf32x3", False)}
    return [v for v in variants() if (v[0], v[2], v[4]["PRECISION"], v[4]["SELF"]) in wanted]


def main():
    failures = 0
    for (label, kernel, dtype, outs, constexprs), config in (
            (v, c) for v in (quick_variants() if QUICK else variants())
            for c in (v[1].configs if ALL_CONFIGS else v[1].configs[:1])):
        constexprs = dict(constexprs, **config.kwargs)
        src = triton.compiler.ASTSource(fn=kernel.fn, signature=signature(kernel, dtype, outs), constexprs=constexprs)
        name = f"{label} {dtype} {constexprs['PRECISION']} SELF={constexprs['SELF']} {config.kwargs}"
        try:
            compiled = triton.compile(src, target=TARGET, options={"num_warps": config.num_warps,
                                                                   "num_stages": config.num_stages})
            shared = compiled.metadata.shared
            if shared > H100_SHARED_BYTES:
                # The autotuner drops such a config (OutOfResources at launch); the first must always fit.
                first = config is kernel.configs[0]
                failures += first
                print(f"{'FAIL' if first else 'over'} {name}: needs {shared} bytes of shared memory, "
                      f"an H100 block has {H100_SHARED_BYTES}")
                continue
            print(f"ok   {name}: {resource_usage(compiled.asm['cubin'])}, {shared} bytes of shared memory")
        except Exception as exc:  # report every failing variant, then fail
            failures += 1
            print(f"FAIL {name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
