"""Step 4: compute-sanitizer memcheck, racecheck and initcheck over tests/gpu_sanitizer.py.

One row per tool: ok (ERROR SUMMARY: 0 errors), failed (errors, with the first reports; or the
workload crashed), timeout (its share of the step's budget ran out), skipped (the tool is not
installed, or it could not start the workload: its message is the reason). memcheck and initcheck
run with PYTORCH_NO_CUDA_MEMORY_CACHING=1; initcheck without LCW_FAST_POISON. A rehearsal runs the
workload once on the CPU without a tool (row "workload"), so the script cannot rot, and records
the tools as skipped.
"""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import rows

STEP = "sanitizer"
ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = ROOT / "tests" / "gpu_sanitizer.py"
STARTED = "gpu_sanitizer: start"
TOOLS = (  # tool, environment (None removes the variable), weight in the split of the step's time
    ("memcheck", {"PYTORCH_NO_CUDA_MEMORY_CACHING": "1", "LCW_FAST_POISON": "1"}, 2),
    ("initcheck", {"PYTORCH_NO_CUDA_MEMORY_CACHING": "1", "LCW_FAST_POISON": None}, 2),
    # the slowest (H200: over 16 s, against memcheck's 16 and initcheck's 12): last, with what they leave
    ("racecheck", {"PYTORCH_NO_CUDA_MEMORY_CACHING": "1", "LCW_FAST_POISON": "1"}, 3),
)
DONE = "gpu_sanitizer: done"
# "========= ERROR SUMMARY: 0 errors"; racecheck: "RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)"
SUMMARIES = (re.compile(r"ERROR SUMMARY: (\d+) error"), re.compile(r"RACECHECK SUMMARY: .*?\((\d+) error"))


def find_tool():
    """compute-sanitizer on PATH, under CUDA_HOME, or under /usr/local/cuda; None if absent."""
    found = shutil.which("compute-sanitizer")
    for home in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        candidate = Path(home or "/nonexistent") / "bin" / "compute-sanitizer"
        if not found and candidate.exists():
            found = str(candidate)
    return found


def _env(changes: dict) -> dict:
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def verdict(rc, output: str) -> tuple:
    """(status, reason, errors) of one tool run from its exit code and its output."""
    errors = sum(int(c) for pattern in SUMMARIES for c in pattern.findall(output))
    tail = " | ".join(output.strip().splitlines()[-6:])
    if errors:
        reports = [line for line in output.splitlines() if line.startswith("========= ") and "SUMMARY" not in line]
        return "failed", " | ".join(reports[:6]) or tail, errors
    if STARTED not in output:
        return "skipped", f"the tool could not run the workload (exit {rc}): {tail}", None
    if rc != 0 or DONE not in output:
        return "failed", f"the workload failed (exit {rc}): {tail}", None
    return "ok", "", 0


def _run_tool(out, tool_path, tool, changes, timeout_s) -> None:
    cmd = [tool_path, "--tool", tool, "--error-exitcode", "3", sys.executable, str(WORKLOAD)]
    print("+ " + " ".join(f"{k}={v}" for k, v in changes.items() if v) + " " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=_env(changes), capture_output=True, text=True, timeout=timeout_s)
        output, rc = proc.stdout + proc.stderr, proc.returncode
        status, reason, errors = verdict(rc, output)
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        rc, errors = None, None
        status, reason = "timeout", f"did not finish within its {timeout_s:.0f} s share of the step's budget"
    print(output, flush=True)
    rows.append(out, STEP, tool, status, tool=tool, rc=rc, errors=errors, reason=reason,
                seconds=round(time.monotonic() - t0, 1), env={k: v for k, v in changes.items() if v})


def run(out: Path, budget_s: float, rehearse: bool) -> int:
    deadline = time.monotonic() + budget_s
    if rehearse:
        proc = subprocess.run([sys.executable, str(WORKLOAD), "--rehearse"], cwd=ROOT, capture_output=True, text=True,
                              timeout=budget_s)
        print(proc.stdout + proc.stderr, flush=True)
        status = "ok" if proc.returncode == 0 and STARTED in proc.stdout else "failed"
        rows.append(out, STEP, "workload", status, rc=proc.returncode, reason="" if status == "ok" else
                    " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-4:]))
    tool_path = None if rehearse else find_tool()
    for i, (tool, changes, weight) in enumerate(TOOLS):
        if tool_path is None:
            reason = ("rehearsal: no CUDA device" if rehearse else
                      "compute-sanitizer not found on PATH, under CUDA_HOME or /usr/local/cuda")
            rows.append(out, STEP, tool, "skipped", tool=tool, reason=reason)
            continue
        share = (deadline - time.monotonic()) * weight / sum(w for _, _, w in TOOLS[i:])  # unused time carries on
        _run_tool(out, tool_path, tool, changes, max(share, 1.0))
    return 0
