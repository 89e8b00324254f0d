"""training.batch_study on a tiny grid: cells train in scored segments, write their raw results with the
command that reproduces them, --reuse skips finished cells and continues an interrupted one, and the
table and both plots are rebuilt from the raw results, and --grids draws the best cells' samples."""
import json
import shutil

import pytest
import torch
from PIL import Image

from training import batch_study

TINY = ["--parts", "a", "c", "--batches", "64", "256", "--gammas", "fixed", "--seeds", "0", "--steps", "4",
        "--fid-every", "2", "--fid-n", "200"]


pytestmark = pytest.mark.usefixtures("keep_threads")  # the runs here set one thread; others keep the default


def test_tiny_study_writes_raw_results_table_and_plots(tmp_path, capsys):
    argv = TINY + ["--out", str(tmp_path / "runs"), "--results", str(tmp_path / "res")]
    batch_study.main(argv)
    raw = sorted((tmp_path / "res" / "raw").glob("*.json"))
    assert [p.stem for p in raw] == ["cwg-b256-fixed-seed0", "cwg-b64-fixed-seed0", "swg-b256-seed0"]
    cell = json.loads(raw[0].read_text())
    assert [point["step"] for point in cell["curve"]] == [2, 4] and cell["fid"] == cell["curve"][-1]["fid"]
    assert cell["command"].startswith("python -m training.batch_study --parts a --batches 256 --gammas fixed")
    assert cell["gamma_value"] == pytest.approx(batch_study.fixed_gamma())
    table = (tmp_path / "res" / "table.md").read_text()
    assert "| a | CW-Generator | 64 | fixed" in table and "| c | SW-Generator | 256 | - |" in table
    assert (tmp_path / "res" / "fid_vs_batch.png").stat().st_size > 0
    # results.json: the raw rows only, whatever cells the last invocation selected
    assert json.loads((tmp_path / "res" / "results.json").read_text()) == {"rows": [json.loads(p.read_text())
                                                                                   for p in raw]}
    assert (tmp_path / "res" / "fid_vs_steps.png").stat().st_size > 0

    # --reuse: a finished cell is read back; a cell whose raw result is gone continues after its last segment
    raw[1].unlink()
    curve = json.loads((tmp_path / "runs" / "cwg-b64-fixed-seed0" / "curve.json").read_text())
    capsys.readouterr()
    batch_study.main(argv + ["--reuse"])
    out = capsys.readouterr().out
    assert "cwg-b256-fixed-seed0: training" not in out and "cwg-b64-fixed-seed0: training" in out
    assert "step 2/4" not in out  # both segments were scored before: nothing left to train
    assert json.loads(raw[1].read_text())["curve"] == curve

    # each finished cell kept its 64 samples (noise seed 0) as a grid PNG, and its memorisation check
    rows = [json.loads(p.read_text()) for p in raw]
    samples = {r["cell"]: tmp_path / "res" / "samples" / f"{r['cell']}.png" for r in rows}
    assert all(r["copying"].startswith("nearest training digit at median distance") for r in rows)
    dim, generate = batch_study.generator(batch_study.Run(tmp_path / "runs" / "swg-b256-seed0"), torch.device("cpu"))
    drawn = generate(torch.randn(64, dim, generator=torch.Generator().manual_seed(0)))
    kept = batch_study.pictures.read_grid(samples["swg-b256-seed0"], 64, 28)
    assert (kept - drawn).abs().max() <= 0.5 / 255 + 1e-6

    # --grids: a cell's samples lost while its run folder is here are kept again, the same PNG
    picture = samples["swg-b256-seed0"].read_bytes()
    samples["swg-b256-seed0"].unlink()
    batch_study.main(argv + ["--table-only", "--grids"])
    assert "samples kept now: swg-b256-seed0" in capsys.readouterr().out
    assert samples["swg-b256-seed0"].read_bytes() == picture

    # --grids without any run folder: the best cell of each model from its kept samples, side by side (one
    # 8x8 grid is 242 px wide), with its memorisation check
    shutil.rmtree(tmp_path / "runs")
    cwg = sorted((r for r in rows if r["model"] == "cwg"), key=lambda r: r["fid"])
    batch_study.main(argv + ["--table-only", "--grids"])
    lines = capsys.readouterr().out.rstrip().splitlines()[-4:]
    assert lines[0] == "samples kept now: none"
    assert lines[1].endswith(f"best_samples.png: {cwg[0]['cell']}, swg-b256-seed0")
    assert lines[2] == f"  {cwg[0]['cell']}: {cwg[0]['copying']}"
    assert Image.open(tmp_path / "res" / "best_samples.png").width == 2 * 242 + 12
    # the best CW-Generator cell's samples gone with its run folder: the next one is drawn, the best named
    samples[cwg[0]["cell"]].unlink()
    batch_study.main(argv + ["--table-only", "--grids"])
    lines = capsys.readouterr().out.rstrip().splitlines()[-4:]
    assert lines[0].endswith(f"best_samples.png: {cwg[1]['cell']}, swg-b256-seed0")
    assert lines[2] == f"  passed over {cwg[0]['cell']} (FID {cwg[0]['fid']:.2f}): its samples were not kept"


def test_memorisation_check_tells_copies_from_new_digits():
    """Training digits themselves sit at distance 0 from the training set; the held-out digits at 1x."""
    data = batch_study.datasets.load("mnist5k")
    heldout = batch_study.nearest_training_distance(data.heldout, data.train)
    copies = batch_study.copying(data.train[:300], data.train, heldout)
    new = batch_study.copying(data.heldout, data.train, heldout)
    assert "median distance 0.00 (300 samples)" in copies and "(0.00x); 100.0% of the samples closer" in copies
    assert "(1.00x); 1.0% of the samples closer" in new


def test_a_segment_trained_but_not_scored_is_scored_with_its_seconds(tmp_path, capsys):
    """An interruption between a segment's training and its score: the next run scores the checkpoint as it
    is (no training) and keeps the seconds the segment took (trained.json), so the time axis loses nothing."""
    argv = ["--parts", "a", "--batches", "64", "--gammas", "fixed", "--seeds", "0", "--steps", "4", "--fid-every",
            "2", "--fid-n", "200", "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "res")]
    batch_study.main(argv)
    run, raw = tmp_path / "runs" / "cwg-b64-fixed-seed0", tmp_path / "res" / "raw" / "cwg-b64-fixed-seed0.json"
    curve = json.loads((run / "curve.json").read_text())
    (run / "curve.json").write_text(json.dumps(curve[:1]))  # killed after training steps 3-4, before scoring
    (run / "trained.json").write_text(json.dumps({"step": 4, "after": curve[0]["train_seconds"],
                                                  "train_seconds": 1234.5, "heldout_metric": 0.5}))
    raw.unlink()
    capsys.readouterr()
    batch_study.main(argv + ["--reuse"])
    assert "CW-Generator done" not in capsys.readouterr().out  # nothing trained
    again = json.loads(raw.read_text())["curve"]
    assert again[1]["fid"] == curve[1]["fid"]
    assert (again[1]["train_seconds"], again[1]["heldout_metric"]) == (1234.5, 0.5)
    assert not (run / "trained.json").exists()


def test_lcw_cells_score_stage_one_in_segments_and_continue_exactly(tmp_path, capsys):
    """Part b: stage 1 in scored segments of whole epochs (batch 1024: 3 steps an epoch); a cell stopped
    after its first segment and continued with --reuse ends bit-equal to one trained straight through."""
    tiny = ["--parts", "b", "--batches", "1024", "--seeds", "0", "--fid-every", "3", "--fid-n", "200",
            "--lt-epochs", "1"]
    batch_study.main(tiny + ["--steps", "9", "--out", str(tmp_path / "whole"), "--results", str(tmp_path / "w")])
    whole = json.loads((tmp_path / "w" / "raw" / "lcw-b1024-seed0.json").read_text())
    assert [point["step"] for point in whole["stage1_curve"]] == [3, 6, 9] and whole["stage1_steps"] == 9
    assert whole["stage1_fid"] == whole["stage1_curve"][-1]["fid"]
    assert whole["stage1_seconds"] == whole["stage1_curve"][-1]["train_seconds"] < whole["train_seconds"]

    resumed = tiny + ["--out", str(tmp_path / "resumed"), "--results", str(tmp_path / "r")]
    batch_study.main(resumed + ["--steps", "3"])
    (tmp_path / "r" / "raw" / "lcw-b1024-seed0.json").unlink()
    capsys.readouterr()
    batch_study.main(resumed + ["--steps", "9", "--reuse"])
    out = capsys.readouterr().out
    assert "step 3/9" not in out and "step 6/9" in out and "step 9/9" in out
    again = json.loads((tmp_path / "r" / "raw" / "lcw-b1024-seed0.json").read_text())
    assert [p["fid"] for p in again["stage1_curve"]] == [p["fid"] for p in whole["stage1_curve"]]
    assert (again["fid"], again["heldout_metric"]) == (whole["fid"], whole["heldout_metric"])
    assert (tmp_path / "r" / "fid_vs_steps.png").stat().st_size > 0  # stage 1's curve drawn dashed


def test_bad_flags_are_one_line_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        batch_study.main(["--steps", "0"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--steps must be >= 1, got 0" in err and len(err.strip().splitlines()) == 1


def test_table_gives_every_part_the_same_held_out_metric():
    """Parts a and c keep it in their curve's last point, part b (LCW) beside its scores; a cell from before
    it was recorded is counted out, and the row says over how many seeds the mean is."""
    common = dict(steps=10, fid=5.0, kid=0.5, features="domain", train_seconds=10.0, seconds_per_step=1.0,
                  gamma_value=0.01)
    rows = [dict(common, part="a", model="cwg", batch=64, gamma="fixed", seed=0, cell="a0",
                 curve=[{"heldout_metric": 0.010}]),
            dict(common, part="b", model="lcw", batch=128, gamma="auto", seed=0, cell="b0", stage1_fid=7.0,
                 heldout_metric=0.008),
            dict(common, part="b", model="lcw", batch=128, gamma="auto", seed=1, cell="b1", stage1_fid=7.0)]
    lines = batch_study.table(rows).splitlines()
    assert lines[0].split(" | ")[8] == "held-out metric"
    assert lines[2].split(" | ")[8] == "0.0100"  # one seed: no spread to show
    assert lines[3].split(" | ")[8] == "0.0080 (1 of 2 seeds)"


def test_times_say_where_a_cell_ran_unless_one_thread_of_the_first_machine():
    """Cells from before device, threads and CPU were recorded ran on one CPU thread: unmarked; the others'
    times carry their device, or their threads and CPU model."""
    common = dict(part="a", model="cwg", batch=4000, gamma="fixed", steps=10, fid=5.0, kid=0.5, features="domain",
                  train_seconds=10.0, seconds_per_step=1.0, gamma_value=0.01, curve=[{"heldout_metric": 0.01}])
    old = dict(common, seed=0, cell="old")
    xeon = dict(common, seed=1, cell="xeon", device="cpu", threads=2, cpu="Xeon")
    gpu = dict(common, seed=2, cell="gpu", device="cuda", threads=1, cpu=None)
    assert [batch_study.where(r) for r in (old, xeon, gpu)] == ["", "2 threads, Xeon", "cuda"]
    assert batch_study.devices([old]) == "" and batch_study.devices([old, xeon, gpu]) == " (2 threads, Xeon; cuda)"
    row = batch_study.table([old, xeon]).splitlines()[2].split(" | ")
    assert row[10].endswith("(2 threads, Xeon)") and row[11].endswith("(2 threads, Xeon) |")
    h200 = dict(gpu, gpu="NVIDIA H200", train_seconds=0.5, seconds_per_step=0.05)
    assert batch_study.where(h200) == "cuda, NVIDIA H200"
    # one group measured on two machines: each machine's times apart, never one mean of both
    row = batch_study.table([xeon, h200]).splitlines()[2].split(" | ")
    assert row[10] == "10 (2 threads, Xeon); 0 (cuda, NVIDIA H200)"
    assert row[11] == "1.000 (2 threads, Xeon); 0.050 (cuda, NVIDIA H200) |"
    # a cell parked on one machine and finished on another; a curve point from before machines were recorded
    moved = dict(xeon, trained_on=[dict(until_step=500), dict(device="cpu", threads=2, cpu="EPYC", until_step=4000),
                                   dict(device="cpu", threads=2, cpu="Xeon", until_step=10000)])
    assert batch_study.where(moved) == ("an unrecorded machine to step 500 then 2 threads, EPYC to step 4,000 "
                                        "then 2 threads, Xeon to step 10,000")
    assert batch_study.where(dict(moved, trained_on=moved["trained_on"][2:])) == "2 threads, Xeon"


def test_a_parked_cell_continues_in_a_fresh_clone_as_if_never_stopped(tmp_path, capsys, monkeypatch):
    """--park: a cell stopped in its second segment, its run folder gone with its machine, continues with
    --reuse from RESULTS/parked/<cell>/ (the state after its first scored segment) and ends equal to a cell
    trained straight through; the finished cell deletes its parked copy; a run folder further on than the
    parked copy is left as it is."""
    cell = ["--parts", "c", "--batches", "256", "--seeds", "0", "--steps", "6", "--fid-every", "2", "--fid-n", "200"]
    batch_study.main(cell + ["--out", str(tmp_path / "whole"), "--results", str(tmp_path / "w")])
    whole = json.loads((tmp_path / "w" / "raw" / "swg-b256-seed0.json").read_text())

    argv = cell + ["--out", str(tmp_path / "runs"), "--results", str(tmp_path / "res"), "--park", "--reuse"]
    score, calls = batch_study._score, []

    def stopped_at_second_score(run, n):
        calls.append(run.step())
        if len(calls) == 2:
            raise KeyboardInterrupt  # the machine goes away after training steps 3-4
        return score(run, n)

    monkeypatch.setattr(batch_study, "_score", stopped_at_second_score)
    with pytest.raises(KeyboardInterrupt):
        batch_study.main(argv)
    monkeypatch.setattr(batch_study, "_score", score)
    parked = tmp_path / "res" / "parked" / "swg-b256-seed0"
    assert sorted(p.name for p in parked.iterdir()) == sorted(batch_study.PARKED)
    assert batch_study.Run(parked).step() == 2 and len(json.loads((parked / "curve.json").read_text())) == 1
    shutil.rmtree(tmp_path / "runs")  # a fresh clone: only the committed results folder is left
    capsys.readouterr()
    first_cpu = batch_study.cpu_model()
    monkeypatch.setattr(batch_study, "cpu_model", lambda: "Another CPU")  # ... on another machine
    batch_study.main(argv)
    out = capsys.readouterr().out
    assert f"continued from {parked} (step 2)" in out and "step 2/6" not in out and "step 6/6" in out
    again = json.loads((tmp_path / "res" / "raw" / "swg-b256-seed0.json").read_text())
    assert [p["fid"] for p in again["curve"]] == [p["fid"] for p in whole["curve"]]
    assert [p["heldout_metric"] for p in again["curve"]] == [p["heldout_metric"] for p in whole["curve"]]
    assert not parked.exists()
    # the row says which machine trained which steps: its times are the sum of both
    mine = dict(device="cpu", threads=1, gpu=None)
    assert again["trained_on"] == [dict(mine, cpu=first_cpu, until_step=2), dict(mine, cpu="Another CPU", until_step=6)]
    assert batch_study.where(again) == f"{first_cpu} to step 2 then Another CPU to step 6"
    assert whole["trained_on"] == [dict(mine, cpu=first_cpu, until_step=6)] and batch_study.where(whole) == first_cpu

    run = tmp_path / "runs" / "swg-b256-seed0"
    batch_study.copy_state(run, parked)
    assert not batch_study.restore(run, parked)  # the run folder is as far on: nothing copied
    (run / "last.pt").unlink()
    assert batch_study.restore(run, parked) and batch_study.Run(run).step() == 6
    batch_study.main(argv)  # the cell's raw result is here (it finished elsewhere): its parked copy goes
    assert not parked.exists()
