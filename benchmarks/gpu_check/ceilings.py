"""Step 2: the machine's ceilings in this run (benchmarks.roofline): fp32, tf32 and bf16 matmul
TFLOP/s and device copy GB/s; the benchmark step compares its rows with them."""
from pathlib import Path

from .. import roofline
from . import gpu_backends, rows

STEP = "ceilings"
SIZES = {False: dict(repeats=5), True: dict(repeats=3, size=256, copy_bytes=1 << 22)}  # by rehearse


def run(out: Path, budget_s: float, rehearse: bool) -> int:
    measured = roofline.measure_ceilings(gpu_backends.device(rehearse), **SIZES[rehearse])
    rows.append(out, STEP, "ceilings", "ok", **measured)
    print("[ceilings] " + ", ".join(f"{k}={v:.4g}" for k, v in measured.items() if v is not None), flush=True)
    return 0


def from_rows(all_rows) -> dict:
    """The ceilings measured by step 2, or None when it did not finish."""
    row = rows.last(all_rows, STEP, "ceilings")
    return None if row is None else {k: row.get(k) for k in ("fp32_tflops", "tf32_tflops", "bf16_tflops", "copy_gbps")}
