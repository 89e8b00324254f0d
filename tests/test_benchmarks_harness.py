"""The benchmark harness itself, on the CPU: the one timer (benchmarks.timing.measure), a tiny sweep's files,
OOM handling, roofline formulas, and that every benchmark's rows carry median, min and max."""
import csv
import json
import time

import pytest
import torch

import lcw_fast
from benchmarks import batch_memory, providers, report, roofline, run, suites, timing

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CEILINGS = {"fp32_tflops": 1.0, "tf32_tflops": None, "bf16_tflops": 2.0, "copy_gbps": 10.0}


def test_measure_warms_up_then_repeats_and_reports_median_min_max():
    """Warm-up calls are kept apart from the timed ones; the stats are those of the timed calls."""
    sleeps = iter([0.03, 0.001, 0.004, 0.002, 0.008])  # the first is the warm-up
    calls = []

    def fn():
        calls.append(1)
        time.sleep(next(sleeps))

    m = timing.measure(fn, torch.device("cpu"), repeats=4, warmup=1, memory=False)
    assert len(calls) == 5 and len(m.warmup_ms) == 1 and len(m.times_ms) == 4
    assert m.warmup_ms[0] >= 30
    ordered = sorted(m.times_ms)
    assert m.stats["min_ms"] == ordered[0] and m.stats["max_ms"] == ordered[-1]
    assert m.stats["median_ms"] == pytest.approx((ordered[1] + ordered[2]) / 2)
    assert m.stats["min_ms"] <= m.stats["q20_ms"] <= m.stats["median_ms"] <= m.stats["q80_ms"] <= m.stats["max_ms"]
    assert ordered[0] >= 1 and ordered[-1] >= 8
    assert m.peak_bytes == m.extra_bytes == 0  # memory=False: no RSS sampling
    assert timing.measure(lambda: None, torch.device("cpu"), repeats=1).stats["q20_ms"] >= 0  # one call works
    with pytest.raises(ValueError, match="repeats"):
        timing.measure(lambda: None, torch.device("cpu"), repeats=0)


def test_measure_stops_early_after_cell_seconds():
    m = timing.measure(lambda: time.sleep(0.01), torch.device("cpu"), repeats=100, warmup=0, cell_seconds=0.02)
    assert 1 <= len(m.times_ms) < 10


def test_training_step_rows_carry_median_min_max():
    got = batch_memory.measure_step("fused", 8, 0, torch.device("cpu"), width=1 / 32, latent=8, steps=2, warmup=0)
    assert got["min_ms"] <= got["median_ms"] <= got["max_ms"]
    assert got["images_per_s"] == pytest.approx(8 / (got["median_ms"] / 1e3))
    assert {"median_ms", "min_ms", "max_ms"} <= set(batch_memory.FIELDS)


def test_tiny_cpu_run_writes_csv_json_markdown_and_plots(tmp_path):
    run.main(["--suite", "all", "--grid", "tiny", "--device", "cpu", "--providers", "reference,cpu,triton",
              "--repeats", "2", "--out", str(tmp_path)])
    with (tmp_path / "all.csv").open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == report.COLUMNS
        rows = list(reader)
    data = json.loads((tmp_path / "all.json").read_text())
    meta = data["meta"]
    for key in ("device", "torch", "triton", "cuda", "git_commit", "settings", "ceilings", "providers"):
        assert key in meta
    assert meta["device_type"] == "cpu" and meta["settings"]["grid"] == "tiny"
    assert meta["providers"]["reference"] == "available"
    assert meta["providers"]["triton"] != "available"  # interpreter or missing: recorded with its reason

    grid = suites.GRIDS["tiny"]
    expected = {(s.name, s.workload, str(n), str(d), p) for name in run.SUITES for s in grid.suites[name]
                for d in s.dims for n in s.ns for p in roofline.PASSES}
    ref_rows = [r for r in rows if r["provider"] == "reference"]
    assert {(r["suite"], r["workload"], r["n"], r["D"], r["pass"]) for r in ref_rows} == expected
    for r in ref_rows:
        assert r["status"] == "ok", r
        assert 0 < float(r["min_ms"]) <= float(r["median_ms"]) <= float(r["max_ms"]) and float(r["flops"]) > 0 and 0 < float(r["roofline_fraction"])
        assert len(r["times_ms"].split()) == int(r["repeats"]) == 2
    assert all(len(r["times_ms"]) == 2 for r in data["rows"] if r["provider"] == "reference")

    md = (tmp_path / "summary.md").read_text()
    assert "### cw_normality(z), grad w.r.t. z, D = 8" in md and "### cw_distance(x, y), grad w.r.t. y, D = 16" in md
    assert "| reference |" in md and meta["device"] in md
    for png in report.PLOTS:
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC


def _fake(name, oom_from_n):
    """The reference provider, except that n >= oom_from_n runs out of memory in the forward."""

    def normality(z, gamma):
        if z.shape[0] >= oom_from_n:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")
        return lcw_fast.cw_normality(z, gamma, backend="reference")

    return providers.Provider(name, "reference", "default", normality, None, lambda device: None)


def _sweep(**kw):
    opts = dict(repeats=1, warmup=0, cell_seconds=None, max_call_seconds=60.0)
    opts.update(kw)
    return run.Sweep(torch.device("cpu"), list(roofline.PASSES), **opts, log=lambda s: None)


def test_oom_is_recorded_and_larger_n_are_skipped():
    suite = suites.Suite("latent", "normality", (8,), (16, 32, 64, 128))
    rows = _sweep().run([suite], [_fake("fake", oom_from_n=64), _fake("fits", oom_from_n=10**9)])
    status = {(r["provider"], r["n"], r["pass"]): r["status"] for r in rows}
    for p in roofline.PASSES:
        assert status["fake", 16, p] == status["fake", 32, p] == "ok"
        assert status["fake", 64, p] == "OOM"
        assert status["fake", 128, p] == "skipped"
        assert all(status["fits", n, p] == "ok" for n in suite.ns)  # another provider goes on
    skipped = next(r for r in rows if r["provider"] == "fake" and r["n"] == 128)
    assert skipped["reason"] == "OOM at n = 64"
    by_n = {r["n"]: r for r in rows if r["provider"] == "fake" and r["pass"] == "fwd+bwd"}
    assert report.largest_n(by_n) == (32, "OOM at n = 64")
    rows = [roofline.add_roofline(r, CEILINGS) if r["status"] == "ok" else r for r in rows]
    md = report.summary_markdown([{"file": "x.json", "rows": rows, "meta": _meta()}], [8], [16, 64])
    assert "| fake | " in md and "| OOM | 32 | " in md and " | OOM at n = 64 |" in md


def _meta():
    return {"device": "test", "ceilings": {**CEILINGS}, "settings": {"suites": ["latent"]}, "torch": "t",
            "triton": None, "cuda": None, "git_commit": "0" * 40, "started": "", "providers": {}}


def test_predicted_call_time_over_the_cap_or_the_budget_skips_larger_n():
    suite = suites.Suite("latent", "normality", (8,), (16, 32))
    rows = _sweep(max_call_seconds=0.0).run([suite], [_fake("fits", oom_from_n=10**9)])
    assert [r["status"] for r in rows if r["n"] == 32] == ["skipped"] * 3
    assert rows[-1]["reason"].startswith("time cap: predicted")
    sweep = _sweep(time_budget=1e-9)
    rows = sweep.run([suite], [_fake("fits", oom_from_n=10**9)])
    assert {r["status"] for r in rows} == {"skipped"} and sweep.budget_hit
    assert rows[0]["reason"].startswith("time budget")


def test_roofline_counts_by_hand():
    # normality, n = 3, D = 4: 6 unordered pairs; forward 2D + 7 = 15 per pair, plus 2nD + 4n = 36
    cost = roofline.op_cost("normality", 3, 3, 4, itemsize=4)
    assert cost["fwd"] == (6 * 15 + 36, 3 * 4 * 4)
    # backward: 6 pairs * (3 + 2 sides * (2D + 1)) = 6 * 21, plus 2nD = 24; z read, grad written
    assert cost["bwd"] == (6 * 21 + 24, 2 * 3 * 4 * 4)
    assert cost["fwd+bwd"] == (126 + 150, 48 + 96)
    # distance, n = 2, m = 3, D = 4: pairs xx 3, yy 6, xy 6; backward yy (2 sides) and xy (1 side)
    cost = roofline.op_cost("distance", 2, 3, 4, itemsize=2)
    assert cost["fwd"] == (15 * (3 + 6 + 6), (2 + 3) * 4 * 2)
    assert cost["bwd"] == (6 * 21 + 6 * (3 + 9), (2 + 2 * 3) * 4 * 2)
    # 2 TFLOP at 1 TFLOP/s = 2 s, 1 GB at 10 GB/s = 0.1 s: compute-bound
    assert roofline.roofline_ms(roofline.Cost(2e12, 1e9), 1.0, 10.0) == pytest.approx(2000.0)
    assert roofline.roofline_ms(roofline.Cost(1e9, 1e11), 1.0, 10.0) == pytest.approx(10000.0)
    assert roofline.ceiling_for("fast", CEILINGS) == "fp32"  # no TF32 measured (CPU)
    assert roofline.ceiling_for("fast", {**CEILINGS, "tf32_tflops": 3.0}) == "tf32"
    assert roofline.ceiling_for("bf16", CEILINGS) == "bf16"
    best = roofline.best_ceilings(CEILINGS, {**CEILINGS, "fp32_tflops": 4.0, "copy_gbps": 5.0})
    assert best == {**CEILINGS, "fp32_tflops": 4.0}


def _row(**kw):
    row = {"workload": "normality", "backend": "cpu", "mode": "default", "dtype": "float32", "pass": "fwd+bwd",
           "n": 3, "m": 3, "D": 4, "median_ms": 1.0}
    return {**row, **kw}


def test_executed_work_per_schedule_and_precision_by_hand():
    # normality, n = 3, D = 4 on a GPU backend in "default" (3xTF32: 3 terms per product):
    # one pass over the 6 unordered pairs: Gram 2D * 3 plus W.Y on 2 sides 2 * 2D * 3 per pair
    w = roofline.work("normality", 3, 3, 4, 4, backend="cuda", mode="default", device_type="cuda")
    # (the timed forward has z requiring grad: a one-pass backend does all its work there)
    assert w["fwd"] == (6 * 8 * (3 + 2 * 3), 6, 3 * 4 * 4) and w["bwd"] == (0, 0, 2 * 3 * 4 * 4)
    assert w["fwd+bwd"] == (6 * 8 * (3 + 2 * 3), 6, 3 * 3 * 4 * 4)
    # recompute: the forward's triangle, then a backward over all 9 ordered pairs, one side each
    w = roofline.work("normality", 3, 3, 4, 4, backend="cuda", mode="default", device_type="cuda",
                      schedule="recompute")
    assert w["fwd+bwd"].tensor_flops == 6 * 8 * 3 + 9 * 8 * (3 + 3) and w["fwd+bwd"].mufu == 6 + 9
    # the reference: no symmetry, one SGEMM term
    w = roofline.work("normality", 3, 3, 4, 4, backend="reference", mode="default", device_type="cuda")
    assert w["fwd"].tensor_flops == 9 * 8 and w["fwd+bwd"].tensor_flops == 9 * 8 + 9 * 8 * 2
    # bf16: one Gram term, two W.Y terms (W hi/lo, Y exact); the CPU: one term in every mode
    w = roofline.work("normality", 3, 3, 4, 2, backend="triton", mode="bf16", device_type="cuda")
    assert w["fwd+bwd"].tensor_flops == 6 * 8 * (1 + 2 * 2)
    w = roofline.work("normality", 3, 3, 4, 4, backend="cpu", mode="default", device_type="cpu")
    assert w["fwd+bwd"].tensor_flops == 6 * 8 * (1 + 2)
    # distance n = 2, m = 3, "fast": xx value (3 pairs), yy both sides (6 pairs), xy one side (6 pairs)
    w = roofline.work("distance", 2, 3, 4, 4, backend="cuda", mode="fast", device_type="cuda")
    assert w["fwd"] == w["fwd+bwd"]._replace(bytes=(2 + 3) * 4 * 4)
    w_value = roofline.work("distance", 2, 3, 4, 4, backend="cuda", mode="fast", device_type="cuda",
                            schedule="recompute")
    assert w_value["fwd"].tensor_flops == (3 + 6 + 6) * 8  # a recomputing backend's forward: values only
    assert w["fwd+bwd"].tensor_flops == 3 * 8 + 6 * 8 * 3 + 6 * 8 * 2 and w["fwd+bwd"].mufu == 15
    # large D on a GPU backend: the scratch round trips per visited pair on top of the compulsory bytes
    w = roofline.work("normality", 3, 3, 300, 4, backend="cuda", mode="default", device_type="cuda")
    compulsory = roofline.op_cost("normality", 3, 3, 300, 4)
    assert w["fwd"].bytes == 6 * (12 + 4 + 2 * 12) + compulsory["fwd"].bytes
    assert w["fwd+bwd"].bytes == 6 * (12 + 4 + 2 * 12) + compulsory["fwd+bwd"].bytes
    least = roofline.minimum_work("normality", 3, 3, 300, 4, backend="cuda", mode="default", device_type="cuda")
    assert least["fwd+bwd"] == (w["fwd+bwd"].tensor_flops, 6, compulsory["fwd+bwd"].bytes)


def test_floors_compare_split_products_with_the_unit_they_run_on():
    gpu = {**CEILINGS, "tf32_tflops": 3.0, "mufu_per_s": 1e12}
    assert roofline.ceiling_for("default", gpu, "cuda", "cuda") == "tf32"  # 3xTF32 runs on TF32 units
    assert roofline.ceiling_for("default", gpu, "reference", "cuda") == "fp32"  # SGEMM
    assert roofline.ceiling_for("fast", CEILINGS, "cpu", "cpu") == "fp32"  # no TF32 measured (CPU)
    assert roofline.ceiling_for("bf16", CEILINGS, "cpu", "cpu") == "bf16"
    # 1 TFLOP on 3 TFLOP/s, 1e6 rsqrt at 1e12/s, 1 GB at 10 GB/s: bandwidth-bound, 100 ms
    assert roofline.floor_ms(roofline.Work(1e12, 1e6, 1e9), 3.0, 1e12, 10.0) == pytest.approx(1000 / 3)
    assert roofline.floor_ms(roofline.Work(1e9, 1e11, 1e9), 3.0, 1e12, 10.0) == pytest.approx(100.0)
    assert roofline.floor_ms(roofline.Work(1e9, 1e11, 1e9), 3.0, None, 10.0) == pytest.approx(100.0)
    # a cuda row that ran exactly at the TF32 ceiling for its 3xTF32 work: both fractions 1
    n, dim = 4096, 64
    done = roofline.work("normality", n, n, dim, 4, backend="cuda", mode="default", device_type="cuda")["fwd+bwd"]
    row = roofline.add_roofline(_row(backend="cuda", n=n, m=n, D=dim, median_ms=done.tensor_flops / 3e12 * 1e3), gpu)
    assert row["ceiling"] == "tf32" and row["terms"] == "3x3"
    assert row["executed_fraction"] == pytest.approx(1.0) and row["roofline_fraction"] == pytest.approx(1.0)
    assert row["exec_tensor_flops"] == row["min_tensor_flops"] == done.tensor_flops
    # the reference executes more than the minimum: its roofline fraction is below its executed one
    row = roofline.add_roofline(_row(backend="reference", n=n, m=n, D=dim, median_ms=100.0), gpu)
    assert row["exec_tensor_flops"] > row["min_tensor_flops"] and row["roofline_fraction"] < row["executed_fraction"]
    assert row["ceiling"] == "fp32" and row["terms"] == "1x1"
    # the CPU row: fp32 ceiling, one term, no MUFU limit
    row = roofline.add_roofline(_row(median_ms=2000.0), CEILINGS)
    assert row["ceiling"] == "fp32" and row["roofline_ms"] == pytest.approx(roofline.floor_ms(
        roofline.Work(row["min_tensor_flops"], 6, row["min_bytes"]), 1.0, None, 10.0))


def test_provider_patterns():
    assert [p.name for p in providers.select(["triton*"])] == ["triton", "triton-fast", "triton-bf16"]
    assert [p.name for p in providers.select(["reference", "keops"])] == ["reference", "keops"]
    with pytest.raises(ValueError, match="matches none"):
        providers.select(["tritonn"])


def test_cpu_one_pass_script_writes_one_row_per_tree_thread_count_and_dim(tmp_path):
    """benchmarks/cpu_one_pass.py against this tree as its own 'old' build, at a tiny size."""
    from benchmarks import cpu_one_pass

    out = tmp_path / "one_pass.csv"
    rows = cpu_one_pass.main(["--old", str(cpu_one_pass.ROOT), "--out", str(out), "--n", "64", "--dims", "3", "12",
                              "--threads", "1", "--rounds", "1", "--calls", "1"])
    with out.open() as f:
        written = list(csv.DictReader(f))
    assert [(r["tree"], r["D"], r["threads"]) for r in written] == [
        ("new", "3", "1"), ("new", "12", "1"), ("old", "3", "1"), ("old", "12", "1")]
    for row in rows:
        assert row["fwd_ms"] > 0 and row["fwd_bwd_ms"] > 0
        assert row["fwd_min_ms"] <= row["fwd_ms"] <= row["fwd_max_ms"]
        assert row["fwd_bwd_min_ms"] <= row["fwd_bwd_ms"] <= row["fwd_bwd_max_ms"]
        assert row["ratio"] == pytest.approx(row["fwd_bwd_ms"] / row["fwd_ms"])  # one round: the ratio of the times
