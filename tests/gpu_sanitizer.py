"""Exercises every CUDA kernel once on small odd shapes, for compute-sanitizer (needs a GPU):

    compute-sanitizer --tool memcheck  python tests/gpu_sanitizer.py
    compute-sanitizer --tool racecheck python tests/gpu_sanitizer.py
    compute-sanitizer --tool initcheck python tests/gpu_sanitizer.py

Covers the fused tensor-core kernels (several padded widths; value-only and the one-pass rounds of
the cross, pair and self-sum schedules), the cuBLAS Gram path in its four precisions (3xTF32, TF32,
bf16, float64) with a scratch budget small enough for many row/column blocks and the sub-blocked
self-sum triangle, and the poison hook. Exits non-zero if a result is not finite.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("LCW_FAST_SCRATCH_BYTES", str(32 * 1024))
os.environ.setdefault("LCW_FAST_POISON", "1")

import lcw_fast  # noqa: E402,F401  (loads the extension)

CASES = [  # n, m, D, dtype, precision
    (1, 3, 2, torch.float32, "default"),
    (67, 45, 12, torch.float32, "default"),
    (130, 70, 64, torch.float32, "default"),
    (70, 33, 200, torch.float32, "default"),
    (45, 66, 40, torch.float64, "default"),
    (100, 70, 300, torch.float32, "default"),
    (100, 70, 300, torch.float32, "fast"),
    (90, 50, 300, torch.float64, "default"),
    (80, 30, 100, torch.bfloat16, "default"),
    (300, 70, 300, torch.bfloat16, "default"),
    (600, 90, 16, torch.float32, "fast"),
]


def main() -> int:
    lib = torch.ops.lcw_fast
    torch.manual_seed(0)
    failures = 0
    for n, m, dim, dtype, precision in CASES:
        x = torch.randn(n, dim, device="cuda").to(dtype)
        y = torch.randn(m, dim, device="cuda").to(dtype)
        outs = [lib.kernel_sum(x, y, 0.5, precision), lib.kernel_sum_self(x, 0.5, precision),
                *lib.kernel_sum_value_grad(x, y, 0.5, precision), *lib.kernel_sum_value_grad_pair(x, y, 0.5, precision),
                *lib.kernel_sum_self_value_grad(x, 0.5, precision)]
        torch.cuda.synchronize()
        ok = all(torch.isfinite(o).all().item() for o in outs)
        failures += not ok
        print(f"n={n} m={m} D={dim} {dtype} {precision}: {'ok' if ok else 'NOT FINITE'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
