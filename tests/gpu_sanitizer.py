"""Runs every CUDA and every Triton kernel once on tiny odd shapes, for compute-sanitizer:

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 LCW_FAST_POISON=1 compute-sanitizer --tool memcheck  python tests/gpu_sanitizer.py
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 LCW_FAST_POISON=1 compute-sanitizer --tool racecheck python tests/gpu_sanitizer.py
    PYTORCH_NO_CUDA_MEMORY_CACHING=1                   compute-sanitizer --tool initcheck python tests/gpu_sanitizer.py

Covers the fused tensor-core kernels (several padded widths; value-only and the one-pass rounds of
the cross, pair and self-sum schedules), the cuBLAS Gram path in its four precisions (3xTF32, TF32,
bf16, float64) with a scratch budget small enough for many row/column blocks and the sub-blocked
self-sum triangle.
(benchmarks/gpu_check.sh's step 4 runs exactly these.) Without the caching allocator every buffer is
its own allocation, so memcheck sees an overrun past it; initcheck runs without poison, which would
initialise every output and hide a read of memory no kernel wrote. Every op registered under
torch.ops.lcw_fast (CUDA) and torch.ops.lcw_fast_triton runs on: both CUDA paths (fused D <= 256,
cuBLAS Gram blocks above) in float32 / float64 / bfloat16 / float16 and both precisions, with a
32 KiB scratch budget (LCW_FAST_SCRATCH_BYTES: many row/column blocks and the self-sum triangle);
the Triton sum, fused-gradient and large-D weight kernels (first autotune config only: autotuning
would launch every config many times under the tool).

    python tests/gpu_sanitizer.py --rehearse    the same calls on CPU tensors (Triton interpreted,
                                                the C++ CPU kernels for lcw_fast::), no tool
Prints "gpu_sanitizer: start" once the kernels are about to run; exits 1 if an output is not finite.
"""
import os
import sys

REHEARSE = "--rehearse" in sys.argv
if REHEARSE:
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
os.environ.setdefault("LCW_FAST_SCRATCH_BYTES", str(32 * 1024))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks.gpu_check import gpu_backends, op_table  # noqa: E402

F32, F64, BF16, F16 = torch.float32, torch.float64, torch.bfloat16, torch.float16
# Triton's cases share D and the odd n, m with correctness cases, so they reuse that step's compiled
# kernels (Triton specialises on D's and the sizes' divisibility by 16) instead of compiling under the tool.
CASES = [  # n, m, D, dtype, precision, whether Triton runs it too
    (1, 3, 2, F32, "default", False),
    (13, 7, 3, F32, "default", True),
    (67, 45, 64, F32, "default", True),
    (70, 33, 200, F32, "default", False),
    (45, 66, 40, F64, "default", False),
    (45, 29, 784, F32, "default", True),
    (100, 70, 300, F32, "default", False),
    (100, 70, 300, F32, "fast", False),
    (90, 50, 300, F64, "default", False),
    (80, 30, 100, BF16, "default", False),
    (60, 20, 300, F16, "default", False),
]


def main() -> int:
    runnable = [b for b in gpu_backends.gpu_backends(REHEARSE) if b.unavailable is None]
    for b in gpu_backends.gpu_backends(REHEARSE):
        print(f"gpu_sanitizer: {b.label}: {b.unavailable or 'runs'}", flush=True)
    if any(b.label == "triton" for b in runnable):
        gpu_backends.pin_first_configs()
    torch.manual_seed(0)
    print("gpu_sanitizer: start", flush=True)
    failures = 0
    for n, m, dim, dtype, precision, triton_too in CASES:
        for b in runnable:
            if (b.label == "triton" and not triton_too) or (b.label == "cpu" and dtype in (BF16, F16)):
                continue  # the C++ CPU kernels take float32 and float64 only
            x = torch.randn(n, dim, device=b.device).to(dtype)
            y = torch.randn(m, dim, device=b.device).to(dtype)
            for name in op_table.available(b.namespace):
                outs = op_table.call(b.namespace, name, x, y, 0.5, precision)
                ok = all(torch.isfinite(o).all().item() for o in outs)
                failures += not ok
                print(f"{b.label}.{name} n={n} m={m} D={dim} {dtype} {precision}: {'ok' if ok else 'NOT FINITE'}",
                      flush=True)
    print(f"gpu_sanitizer: done, {failures} non-finite", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
