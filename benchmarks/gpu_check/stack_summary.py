"""summary.md of benchmarks/device_stack.sh: versions, each part's verdict and time, the rehearsal's steps,
the compile report under the device's Triton and what its compile times say about the device's JIT.

    python -m benchmarks.gpu_check.stack_summary --logs DIR --kit DIR --report JSON --out FILE

Runs in the device-stack venv, in the copied tree (it imports the correctness step's cases).
"""
import argparse
import json
import platform
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Dict, List

from . import meta, rows

PACKAGES = ("torch", "triton", "torchvision", "numpy", "setuptools", "wheel", "pip")
PART_TITLES = {"venv": "venv (.venv-device)", "build": "build with CUDA kernels", "extension": "extension loads",
               "kit": "gpu_check.sh --rehearse", "triton_tests": "Triton interpreter tests + pinning test",
               "triton_ops": "test_ops.py -k triton", "compile_report": "compile report --realistic"}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _nvcc() -> str:
    for nvcc in ("nvcc", "/usr/local/cuda/bin/nvcc"):
        try:
            out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
        except OSError:
            continue
        found = re.search(r"release ([\d.]+)", out)
        return found.group(1) if found else "unknown"
    return "not found"


def parts(logs: Path) -> List[dict]:
    """One dict per part of the script: name, rc, seconds, the last line of its log."""
    found = []
    for line in (logs / "parts.tsv").read_text().splitlines():
        name, rc, ms = line.split("\t")
        log = logs / f"{name}.log"
        last = log.read_text().strip().splitlines()[-1:] if log.exists() else []
        found.append({"name": name, "rc": int(rc), "seconds": int(ms) / 1000, "last": last[0] if last else ""})
    return found


def bucket(dim: int) -> str:
    """The compile-report group of a dimension: the fused kernel's padded BLOCK_D, or "large"."""
    from lcw_fast import triton_fused

    return str(triton_fused.block_d(dim)) if dim <= triton_fused.MAX_DIM else "large"


def jit_estimate(report: List[dict]) -> Dict[str, float]:
    """Seconds of Triton JIT the device's correctness step needs at least: for every (D group, dtype,
    precision) its cases touch, the compile time of each kernel's first default config (what the pinned
    step compiles), once each."""
    import torch

    from .correctness import GPU_CASES

    first = {}
    for row in report:
        key = (row["kernel"], bucket(row["D"]), row["dtype"], row["precision"])
        if row["precision"] == "tf32" or row["default"]:
            first.setdefault(key, 0.0)
            first[key] = max(first[key], row.get("compile_s", 0.0))  # shared specialisations compile once
    labels = {torch.float32: ("fp32", "3xtf32"), torch.float64: ("fp64", "fp64"), torch.bfloat16: ("bf16", "bf16"),
              torch.float16: ("bf16", "bf16")}
    touched = set()
    for case in GPU_CASES:
        dtype, precision = labels[case.dtype]
        if case.precision == "fast":
            precision = "tf32"
        touched.add((bucket(case.dim), dtype, precision, case.dtype == torch.float16))
    per_group = {}
    for group, dtype, precision, fp16 in touched:
        seconds = sum(s for (k, g, d, p), s in first.items() if (g, d, p) == (group, dtype, precision))
        per_group[f"D {group} {'fp16' if fp16 else dtype} {precision}"] = seconds
    return per_group


def ninja_objects(tree: Path) -> List[float]:
    """Seconds each object of the extension's last build took (ninja's log in build/)."""
    seconds = []
    for log in tree.glob("build/*/.ninja_log"):
        for line in log.read_text().splitlines()[1:]:
            start, end = line.split("\t")[:2]
            seconds.append((int(end) - int(start)) / 1000)
    return seconds


def compile_times(report: List[dict]) -> List[str]:
    by_kernel = {}
    for row in report:
        if row.get("compile_s"):
            by_kernel.setdefault(row["kernel"], []).append(row["compile_s"])
    lines = ["| kernel | compiles | mean s | max s | total s |", "| --- | --- | --- | --- | --- |"]
    for kernel, times in sorted(by_kernel.items()):
        lines.append(f"| {kernel} | {len(times)} | {sum(times) / len(times):.2f} | {max(times):.2f} | {sum(times):.1f} |")
    return lines


def render(logs: Path, kit: Path, report_path: Path) -> str:
    found = parts(logs)
    passed = all(p["rc"] == 0 for p in found)
    versions = {name: _version(name) for name in PACKAGES}
    kit_meta = meta.read(kit)
    lines = [f"# Device-stack rehearsal: {'every part passed' if passed else 'a part FAILED'}", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {kit_meta.get('git_commit', '?')}, "
             f"on {platform.node() or 'this machine'} ({kit_meta.get('cores', '?')} cores, no GPU). "
             "`bash benchmarks/device_stack.sh`: the GPU kit rehearsed on the GPU machine's own versions.", "",
             "| Python | " + " | ".join(PACKAGES) + " | nvcc |", "| --- " * (len(PACKAGES) + 2) + "|",
             f"| {platform.python_version()} | " + " | ".join(versions[n] for n in PACKAGES) + f" | {_nvcc()} |", "",
             "## Parts", "", "| part | verdict | seconds | last line of its log |", "| --- | --- | --- | --- |"]
    for p in found:
        last = p["last"].replace("|", "\\|")[:160]
        lines.append(f"| {PART_TITLES.get(p['name'], p['name'])} | {'ok' if p['rc'] == 0 else 'FAILED rc=' + str(p['rc'])} "
                     f"| {p['seconds']:.0f} | {last} |")
    lines += ["", f"Build path: {kit_meta.get('build_path', '?')} ({kit_meta.get('build_path_reason', '?')}) in the "
              "rehearsal's build step; the CUDA build above took the same path (its log's first line)."]
    objects = ninja_objects(Path.cwd())
    if objects:
        lines.append(f"The build compiled {len(objects)} objects in {sum(objects):.0f} s of compiler time, the longest "
                     f"{max(objects):.0f} s: on the device's 16 cores (MAX_JOBS = cores) its build step needs about "
                     f"the longest object plus the link, {max(objects):.0f}-{max(objects) + 15:.0f} s on these cores.")
    results = rows.read(kit) if (kit / rows.RESULTS).exists() else []
    steps = [r for r in results if r["name"] == "step"]
    if steps:
        lines += ["", "## The kit's steps (rehearsal)", "", "| step | status | seconds | budget s |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {r['step']} | {r['status']} | {r.get('seconds', '')} | {r.get('budget_s', '')} |" for r in steps]
        pinning = [r for r in results if r["name"] == "autotune pinning"]
        if pinning:
            lines += ["", f"Autotune pinning in the correctness step: {pinning[0]['status']}, at most "
                      f"{pinning[0]['max_kept']} config kept per launch over {len(pinning[0]['kernels'])} kernels."]
    if report_path.exists():
        report = json.loads(report_path.read_text())
        spills = sum(1 for r in report if r["default"] and r["spill_bytes"])
        lines += ["", f"## Compile report (triton {report[0]['triton'] if report else '?'}, sm_90, --realistic)", "",
                  f"{len(report)} compiles, {sum(r['default'] for r in report)} default configs, {spills} of them spill "
                  "(any D, 12288 included). Compile time per kernel on this machine (whole pipeline, "
                  "first compile of each specialisation):", ""] + compile_times(report)
        estimate = jit_estimate(report)
        lines += ["", "## JIT estimate for the device's correctness step", "",
                  f"At least {sum(estimate.values()):.0f} s of Triton compiles on this machine's cores: one "
                  "compile of each kernel's pinned config for every (D group, dtype, precision) the GPU cases "
                  "touch. Launches specialise on n and m too (1, odd, a multiple of 16), so the device may "
                  "compile each group up to three times; its cores are faster than these.", "",
                  "| group | seconds |", "| --- | --- |"]
        lines += [f"| {g} | {s:.1f} |" for g, s in sorted(estimate.items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check.stack_summary", description=__doc__)
    p.add_argument("--logs", type=Path, required=True, help="the script's log folder (parts.tsv, <part>.log)")
    p.add_argument("--kit", type=Path, required=True, help="the rehearsal's --out folder")
    p.add_argument("--report", type=Path, required=True, help="the compile report's JSON")
    p.add_argument("--out", type=Path, required=True, help="the summary to write")
    args = p.parse_args(argv)
    meta.write_text(args.out, render(args.logs, args.kit, args.report))
    print(f"wrote {args.out}")
    return 0 if all(part["rc"] == 0 for part in parts(args.logs)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
