"""benchmarks/gpu_check.sh without a GPU: the rehearsal end to end (its files, steps and statuses), a
SIGKILL in the middle of the benchmark step, and the kit's verdict, search and parsing logic."""
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_check import build, rows, sanitizer, study, summary, training_steps
from training import batch_study

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ("build", "ceilings", "correctness", "sanitizer", "benchmarks", "training", "summary")
FILES = {"results.jsonl", "summary.md", "meta.json", "build.log", "run.log", "sanitizer.log"}


def _kit(out, *args, rehearse=True, **popen):
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("OUT", None)
    env.update(popen.pop("env", {}))
    cmd = ["bash", str(KIT), *(["--rehearse"] if rehearse else []), "--out", str(out), *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def _parse_lines(path: Path):
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.slow
def test_rehearsal_writes_every_step_and_file(tmp_path):
    t0 = time.monotonic()
    proc = _kit(tmp_path)
    log, _ = proc.communicate(timeout=300)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, log
    assert seconds < 300
    assert {f.name for f in tmp_path.iterdir()} == FILES  # at most 8 files come back from a device

    got = _parse_lines(tmp_path / "results.jsonl")
    for r in got:
        assert {"step", "name", "status"} <= r.keys() and r["status"] in rows.STATUSES, r
    verdicts = {r["step"]: r for r in got if r["name"] == "step"}
    assert set(verdicts) == set(STEPS)
    assert {s: verdicts[s]["status"] for s in STEPS} == dict.fromkeys(STEPS, "ok"), log

    by = {(r["step"], r["name"]): r for r in got}
    assert by[("build", "build")]["status"] == "skipped" and by[("build", "machine")]["rehearsal"] is True
    assert by[("ceilings", "ceilings")]["fp32_tflops"] > 0 and by[("ceilings", "ceilings")]["copy_gbps"] > 0

    checks = [r for r in got if r["step"] == "correctness" and "op" in r]
    assert {r["backend"] for r in checks} == {"triton", "cpu"}
    assert by[("correctness", "cuda")]["status"] == "skipped"
    for r in checks:
        assert r["status"] == "ok" and r["bit_equal"], r
        assert (r["value_rel_err"] is not None) or (r["grad_rel_l2"] is not None)
        assert r["value_rel_err"] is None or r["value_rel_err"] <= r["value_rtol"]
        assert r["grad_rel_l2"] is None or r["grad_rel_l2"] <= r["grad_rel_l2_tol"]
    assert {"kernel_sum", "kernel_sum_self", "kernel_sum_grad", "kernel_sum_self_grad"} <= {r["op"] for r in checks}
    api = [r for r in got if r["step"] == "correctness" and r["name"].startswith("accuracy ")]
    assert {(r["workload"], r["provider"]) for r in api} >= {("normality", "triton"), ("distance", "cpu-bf16")}
    assert all(r["status"] == "ok" and r["value_err_over_scale"] <= r["value_tol"] for r in api), api

    assert by[("sanitizer", "workload")]["status"] == "ok"
    assert all(by[("sanitizer", t)]["status"] == "skipped" for t in ("memcheck", "racecheck", "initcheck"))

    timed = [r for r in got if r["step"] == "benchmarks" and r["status"] == "ok" and "pass" in r]
    assert {r["provider"] for r in timed} == {"reference", "cpu"}
    assert {r["pass"] for r in timed} == {"fwd", "bwd", "fwd+bwd"}
    for r in timed:
        assert r["median_ms"] > 0 and len(r["times_ms"]) == r["repeats"] >= 1 and r["roofline_fraction"] > 0
        assert r["peak_mem_bytes"] > 0
    assert any("speedup_vs_reference" in r for r in timed)
    assert by[("benchmarks", "provider triton")]["status"] == "skipped"

    for backend in training_steps.BACKENDS:
        step = by[("training", f"batch 8 {backend}")]
        assert step["images_per_s"] > 0 and 0 < step["min_ms"] <= step["median_ms"] <= step["max_ms"]
        assert ("training", f"largest batch {backend}") in by

    md = (tmp_path / "summary.md").read_text()
    for title in ("## Steps", "## Ceilings", "## Correctness", "## compute-sanitizer", "## Headline benchmarks",
                  "## Training steps"):
        assert title in md
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["rehearsal"] is True and meta["git_commit"] and meta["finished"]


def test_a_failed_step_is_recorded_and_the_next_runs(tmp_path):
    """Without --rehearse and with no CUDA device visible, the ceilings step fails; its verdict row
    carries the reason and its log's tail, the summary still runs, and the kit exits 1."""
    proc = _kit(tmp_path, "--steps", "ceilings", rehearse=False, env={"CUDA_VISIBLE_DEVICES": ""})
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, log
    verdicts = {r["step"]: r for r in _parse_lines(tmp_path / "results.jsonl") if r["name"] == "step"}
    assert verdicts["ceilings"]["status"] in ("failed", "timeout")
    assert verdicts["ceilings"]["log_tail"].startswith("=== ceilings")
    assert verdicts["summary"]["status"] == "ok" and (tmp_path / "summary.md").exists()


def _descendants(pid: int):
    """pid and every process below it (from /proc), children first-seen order."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def test_sigkill_mid_benchmarks_keeps_every_row_written(tmp_path):
    """The benchmark step pauses after each cell (GPU_CHECK_TEST_PAUSE_S); the kit and everything it
    started are SIGKILLed in that pause, after at least two cells."""
    proc = _kit(tmp_path, "--steps", "benchmarks", env={"GPU_CHECK_TEST_PAUSE_S": "2"}, start_new_session=True)
    results = tmp_path / "results.jsonl"
    deadline = time.monotonic() + 240
    seen = []
    while time.monotonic() < deadline:
        seen = _parse_lines(results) if results.exists() else []
        if sum(1 for r in seen if r["step"] == "benchmarks" and "pass" in r) >= 6:  # two cells of 3 passes
            break
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.5)
    else:
        pytest.fail("no benchmark rows within 240 s")
    for pid in _descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    after = _parse_lines(results)  # every line complete and valid JSON
    assert after[:len(seen)] == seen
    assert all(r["step"] == "benchmarks" and r["name"] != "step" for r in after)  # killed before its verdict
    assert all(r["median_ms"] > 0 for r in after if r["status"] == "ok" and "pass" in r)
    assert not (tmp_path / "summary.md").exists()


def test_step_verdicts(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("before\n")
    rows.append(tmp_path, "a", "case 1", "ok", value=1.0)
    rows.append(tmp_path, "a", "case 2", "failed", reason="too far")
    offset = log.stat().st_size
    log.write_text("before\nline 1\nline 2\n")
    row = rows.end_step(tmp_path, "a", 0, 1.5, 10, log, offset)
    assert row["status"] == "failed" and "case 2" in row["reason"] and row["log_tail"] == "line 1\nline 2"
    assert rows.end_step(tmp_path, "a", 124, 10.2, 10, log, offset)["status"] == "timeout"
    assert rows.end_step(tmp_path, "b", 1, 0.1, 10, log, 0)["status"] == "failed"
    rows.append(tmp_path, "c", "only", "skipped", reason="no GPU")
    assert rows.end_step(tmp_path, "c", 0, 0.1, 10, log, 0)["reason"] == "no GPU"
    rows.append(tmp_path, "d", "nan", "ok", value=float("nan"))
    assert rows.read(tmp_path)[-1]["value"] == "nan"  # strict JSON: no NaN literal
    with pytest.raises(ValueError, match="status must be one of"):
        rows.append(tmp_path, "d", "x", "OOM")


def test_largest_batch_doubles_then_bisects(tmp_path, monkeypatch):
    def fake(backend, batch, steps, warmup, device, width=1.0):
        if batch > 900:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return {"backend": backend, "images_per_s": 1.0, "peak_memory_bytes": batch * 1000, "loss": 0.0}

    monkeypatch.setattr(training_steps, "train_steps", fake)
    plan = dict(training_steps.PLAN[False], budget_bytes=10**9)
    training_steps.largest_batch(tmp_path, "auto", torch.device("cpu"), plan, time.monotonic() + 60)
    got = rows.read(tmp_path)
    assert [r["batch"] for r in got if r["name"].startswith("probe")] == [256, 512, 1024, 768, 896]
    assert [r["oom"] for r in got if r["name"].startswith("probe")] == [False, False, True, False, False]
    result = got[-1]
    assert (result["largest_batch"], result["first_failing_batch"]) == (896, 1024)


@pytest.mark.parametrize("output, rc, status, errors", [
    ("gpu_sanitizer: start\ngpu_sanitizer: done, 0 non-finite\n========= ERROR SUMMARY: 0 errors\n", 0, "ok", 0),
    ("gpu_sanitizer: start\n========= Invalid __global__ read of size 4\n========= ERROR SUMMARY: 2 errors\n", 3,
     "failed", 2),
    ("gpu_sanitizer: start\ngpu_sanitizer: done\n========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)\n",
     3, "failed", 1),
    ("========= Error: Target application terminated before first instrumented API call\n", 1, "skipped", None),
    ("gpu_sanitizer: start\nTraceback (most recent call last):\n", 1, "failed", None),
])
def test_sanitizer_verdict(output, rc, status, errors):
    got_status, reason, got_errors = sanitizer.verdict(rc, output)
    assert (got_status, got_errors) == (status, errors)
    assert got_status == "ok" or reason


def test_publish_copies_the_out_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    rows.append(out, "x", "y", "ok")
    (out / "summary.md").write_text("# s\n")
    dest = summary.publish(out, tmp_path / "repo", "nvidia-h200")
    assert dest == tmp_path / "repo" / "benchmarks" / "results" / "nvidia-h200" / "gpu-check"
    assert {f.name for f in dest.iterdir()} == {"results.jsonl", "summary.md"}


def test_build_step_imports_lcw_fast_only_after_building():
    """lcw_fast.ops loads the extension once, at import: imported before pip, it would miss the build."""
    code = "import sys, benchmarks.gpu_check.build, benchmarks.gpu_check.__main__; print('lcw_fast' in sys.modules)"
    got = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert got.stdout.strip() == "False", got.stderr


_PINNING_PROBE = """
import json, sys
from pathlib import Path
from triton.runtime.autotuner import Autotuner
kept, timed = [], []
prune = Autotuner.prune_configs
def counting_prune(self, kwargs):
    out = prune(self, kwargs)
    kept.append(len(out))
    return out
Autotuner.prune_configs = counting_prune
Autotuner._bench = lambda self, *a, **k: timed.append(1) or [0.0, 0.0, 0.0]
from benchmarks.gpu_check import correctness, rows
out = Path(sys.argv[1])
rc = correctness.run(out, 600.0, True)
print(json.dumps({"rc": rc, "kept": kept, "timed": len(timed)}))
"""


@pytest.mark.slow
def test_correctness_step_pins_every_autotuner_to_one_config(tmp_path):
    """With the tables' real config lists (LCW_FAST_INTERPRET_CONFIGS=all), every Autotuner that
    Triton prunes during the rehearsal's correctness step keeps one config and none is timed: counted
    by Triton's own Autotuner.prune_configs, not by the pinning code."""
    env = dict(os.environ, TRITON_INTERPRET="1", LCW_FAST_INTERPRET_CONFIGS="all", LCW_FAST_POISON="1",
               CUDA_VISIBLE_DEVICES="")
    got = subprocess.run([sys.executable, "-c", _PINNING_PROBE, str(tmp_path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-3000:]
    probe = json.loads(got.stdout.strip().splitlines()[-1])
    pinning = {r["name"]: r for r in _parse_lines(tmp_path / "results.jsonl")}["autotune pinning"]
    kernels = pinning["kernels"]
    assert {name.rsplit(".", 1)[0] for name in kernels} >= {"lcw_fast.triton_fused", "lcw_fast.triton_blocked"}
    assert all(k["configs"] > 1 for k in kernels.values()), kernels  # the real tables, not one config each
    assert len(probe["kept"]) >= 4 and max(probe["kept"]) == 1, probe
    assert probe["timed"] == 0 and probe["rc"] == 0
    assert pinning["status"] == "ok" and pinning["max_kept"] == 1


@pytest.mark.parametrize("found, path", [
    ({"setuptools": "65.5.0", "wheel": None, "pip": "24.0"}, "inplace"),  # torch 2.11's venv on Python 3.11
    ({"setuptools": "65.5.0", "wheel": "0.45.1", "pip": "24.0"}, "editable"),
    ({"setuptools": "70.1.0", "wheel": None, "pip": "24.0"}, "editable"),  # bdist_wheel moved into setuptools
    ({"setuptools": "84.2.1", "wheel": None, "pip": "26.0"}, "editable"),
    ({"setuptools": "63.2.0", "wheel": "0.45.1", "pip": "24.0"}, "inplace"),  # no PEP 660
    ({"setuptools": "84.2.1", "wheel": None, "pip": None}, "inplace"),
])
def test_build_path_follows_setuptools_and_wheel(found, path):
    got, why = build.choose_path("auto", found)
    assert got == path and why
    assert build.choose_path("inplace", found)[0] == "inplace"
    with pytest.raises(SystemExit, match="LCW_FAST_BUILD must be"):
        build.choose_path("wheel", found)


@pytest.mark.slow
def test_forced_inplace_build_builds_and_imports(tmp_path):
    """The fallback path (LCW_FAST_BUILD=inplace, the build step's own switch) on a copy of the sources,
    CPU kernels only: it compiles, lcw_fast imports the new extension from the copy, and a kernel sum
    agrees with the float64 reference."""
    import shutil

    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "csrc", tmp_path / "csrc")
    shutil.copytree(ROOT / "lcw_fast", tmp_path / "lcw_fast", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    env = dict(os.environ, LCW_FAST_BUILD="inplace", LCW_FAST_CPU_ONLY="1", MAX_JOBS="2")
    got = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check.build", "--root", str(tmp_path), "--no-link"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-2000:]
    assert "lcw_fast build: inplace (forced by LCW_FAST_BUILD=inplace)" in got.stdout
    assert list((tmp_path / "lcw_fast").glob("_C*.so"))
    code = ("import torch, lcw_fast; from lcw_fast import ops, reference; assert ops.has_extension(), ops.EXTENSION_ERROR;"
            "x = torch.randn(37, 5, dtype=torch.float64); y = torch.randn(11, 5, dtype=torch.float64);"
            "a = lcw_fast.kernel_sum(x, y, gamma=0.5, backend='cpu'); b = reference.kernel_sum(x, y, 0.5);"
            "assert abs(a.item() - b.item()) <= 1e-12 * abs(b.item()), (a, b); print(lcw_fast.__file__)")
    got = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.strip() == str(tmp_path / "lcw_fast" / "__init__.py")


@pytest.mark.slow
def test_study_step_trains_packs_and_summarises_its_cells(tmp_path):
    """The optional step "study" in a rehearsal: one cell of each part (2 steps, CPU), a row for each, their
    raw results and kept samples in the one tarball that comes back, and a table in summary.md."""
    proc = _kit(tmp_path, "--steps", "study")
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    got = _parse_lines(tmp_path / "results.jsonl")
    cells = {r["name"]: r for r in got if r["step"] == "study" and r["name"] != "step"}
    assert set(cells) == {"cell cwg-b256-fixed-seed0", "cell cwg-b1024-fixed-seed0", "cell lcw-b1024-seed0",
                          "cell swg-b256-seed0"}
    assert all(r["status"] == "ok" and r["fid"] > 0 and r["device"] == "cpu" for r in cells.values()), cells
    with tarfile.open(tmp_path / study.TARBALL) as tar:
        assert sorted(tar.getnames()) == sorted(f"{folder}/{name.removeprefix('cell ')}.{ext}" for name in cells
                                                for folder, ext in (("raw", "json"), ("samples", "png")))
    assert {f.name for f in tmp_path.iterdir()} == {"results.jsonl", "summary.md", "meta.json", "run.log",
                                                    "study.log", study.TARBALL}
    assert "| cwg-b256-fixed-seed0 | ok |" in (tmp_path / "summary.md").read_text()



def test_study_step_trains_the_acceptance_cells_first():
    """Issue 17's acceptance needs the batch-4,000 rows of parts a and b: their cells come first, seed by
    seed, part c's last."""
    cells = sorted(batch_study.cells(batch_study.parse_args(study.PLAN[False])), key=study.order)
    names = [batch_study.cell_name(batch_study.PARTS[p][0], b, g, s) for p, b, g, s in cells]
    first = [f"{cell}-seed{seed}" for seed in range(3) for cell in ("cwg-b4000-fixed", "cwg-b4000-silverman",
                                                                    "lcw-b4000")]
    assert names == first + [f"swg-b4000-seed{seed}" for seed in range(3)]

def test_study_step_skips_what_the_budget_cannot_hold(tmp_path, monkeypatch):
    """Cells cut off by the budget are stopped and recorded as skipped (the next call continues them); once
    the budget is spent no cell starts."""
    started = []

    class Endless:  # a cell process that never finishes
        returncode = None

        def __init__(self, cmd):
            started.append(cmd)

        def poll(self):
            return self.returncode

        def kill(self):
            self.returncode = -9

        def wait(self):
            return self.returncode

    monkeypatch.setattr(study.subprocess, "Popen", Endless)
    plan = ["--parts", "a", "--batches", "1024", "--gammas", "fixed", "--seeds", "0", "1"]
    study.train(tmp_path, time.monotonic() + 3, torch.device("cpu"), tmp_path / "runs", tmp_path / "res", plan, 2)
    study.train(tmp_path, time.monotonic() - 1, torch.device("cpu"), tmp_path / "runs", tmp_path / "res", plan, 2)
    assert len(started) == 2 and all("--threads" in cmd for cmd in started)
    got = rows.read(tmp_path)
    expected = [(f"cell cwg-b1024-fixed-seed{seed}", "skipped") for seed in (0, 1)]
    assert [(r["name"], r["status"]) for r in got] == expected * 2
    assert all("cut off by the step's budget" in r["reason"] for r in got[:2])
    assert all("left of the step's budget" in r["reason"] for r in got[2:])
    assert not (tmp_path / study.TARBALL).exists()


def test_study_step_leaves_committed_cells_alone(tmp_path, monkeypatch):
    """A cell whose raw result is committed is recorded as skipped and never started."""
    started = []
    monkeypatch.setattr(study.subprocess, "Popen", lambda cmd: started.append(cmd))
    done = tmp_path / "done"
    done.mkdir()
    (done / "cwg-b1024-fixed-seed0.json").write_text("{}")
    plan = ["--parts", "a", "--batches", "1024", "--gammas", "fixed", "--seeds", "0"]
    study.train(tmp_path, time.monotonic() + 60, torch.device("cpu"), tmp_path / "runs", tmp_path / "res", plan, 2,
                done)
    assert not started
    assert [(r["name"], r["status"], r["reason"]) for r in rows.read(tmp_path)] == [
        ("cell cwg-b1024-fixed-seed0", "skipped", f"its raw result is in {done}")]


def test_background_steps_and_budgets_until_a_time(tmp_path):
    """`bg:STEP` runs beside the next steps and `wait` joins it; `--budget STEP=@T` gives it what is left
    of T seconds; an unknown step in either is refused before anything runs."""
    proc = _kit(tmp_path, "--steps", "bg:ceilings,build,wait", "--budget", "ceilings=@120")
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log
    verdicts = {r["step"]: r for r in _parse_lines(tmp_path / "results.jsonl") if r["name"] == "step"}
    assert set(verdicts) == {"ceilings", "build", "summary"} and all(v["status"] == "ok" for v in verdicts.values())
    assert 100 <= verdicts["ceilings"]["budget_s"] <= 120
    for bad in (["--steps", "bg:banana"], ["--budget", "banana=3"]):
        proc = _kit(tmp_path / "bad", *bad)
        log, _ = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "unknown step 'banana'" in log and not (tmp_path / "bad").exists()
