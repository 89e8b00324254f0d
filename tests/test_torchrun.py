"""`torchrun --nproc_per_node=2 -m training.train` on the CPU (gloo): the global-batch cw2 run equals the
one-process run of the same global batch (per-step losses, parameters), resumes exactly (with chunked
ranks), and a rank that dies ends the job with a clear message and an intact last.pt. The same global
batch of the CW-Generator (training.generator) on 2 ranks equals one process; its SW-Generator and
--sync-bn on gloo are one-line refusals."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import assert_close
from training import train
from training.runs import Run

ROOT = Path(__file__).resolve().parent.parent
# lambda pinned: the comparison must not move with the mnist5k defaults (at lambda 1 Adam amplifies the
# ranks' different float32 summation order to 2e-5 in single weights within 10 steps). No BatchNorm: with
# it each rank normalises its own rows (ghost batch norm; tests/test_distributed.py checks that case).
COMMON = ["--data", "mnist5k", "--batch-size", "400", "--lam", "0.1", "--no-batch-norm", "--log-every", "1",
          "--device", "cpu", "--threads", "1", "--no-progress"]


def _torchrun(argv, module="training.train", **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", module, *argv]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)


def _finish(process, timeout=400):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out, err


def _losses(path):
    return torch.tensor([r["loss"] for r in Run(path).metrics() if "loss" in r], dtype=torch.float64)


def _params(path, model="autoencoder"):
    return Run(path).load("last")["models"][model]


def _compare(ddp, one, model="autoencoder", atol=1e-5, rel_l2=None):
    assert_close(_losses(ddp), _losses(one), rtol=1e-5, atol=1e-7, name="per-step losses")
    ref = _params(one, model)
    for name, value in _params(ddp, model).items():
        assert_close(value, ref[name], rtol=1e-5, atol=atol, rel_l2=rel_l2, name=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2-rank cw2 run of 10 steps (global batch 400 = 2 x 200) and the one-process run of batch 400."""
    root = tmp_path_factory.mktemp("torchrun")
    ddp = _torchrun(COMMON + ["--objective", "cw2", "--epochs", "1", "--out", str(root / "ddp")])
    threads = torch.get_num_threads()
    train.main(COMMON + ["--objective", "cw2", "--epochs", "1", "--out", str(root / "one")])
    torch.set_num_threads(threads)
    _finish(ddp)
    return root


def test_two_ranks_equal_one_process(runs):
    assert len(_losses(runs / "ddp")) == 10
    _compare(runs / "ddp", runs / "one")
    config = Run(runs / "ddp").config()
    assert (config["world_size"], config["batch_size"], config["rank_batch_size"]) == (2, 400, 200)
    final = lambda path: {k: v for k, v in [r for r in Run(path).metrics() if "heldout_metric" in r][-1].items()
                          if k != "images_per_s"}  # the stage's summary (the stage-end FID record follows it)
    assert final(runs / "ddp").keys() == final(runs / "one").keys()
    assert final(runs / "ddp")["heldout_metric"] == pytest.approx(final(runs / "one")["heldout_metric"], rel=1e-5)


def test_resume_under_two_ranks_is_exact(runs):
    """Both runs continue to step 20; the ranks now also chunk their 200 rows (64, 64, 64, 8)."""
    ddp = _torchrun(["--out", str(runs / "ddp"), "--resume", "--epochs", "2", "--chunk-size", "64",
                     "--device", "cpu", "--no-progress"])
    threads = torch.get_num_threads()
    train.main(["--out", str(runs / "one"), "--resume", "--epochs", "2", "--device", "cpu", "--threads", "1",
                "--no-progress"])
    torch.set_num_threads(threads)
    _finish(ddp)
    assert len(_losses(runs / "ddp")) == 20
    _compare(runs / "ddp", runs / "one")


def _rank_process(parent: int, rank: int) -> int:
    """The pid of torchrun's worker process with RANK=rank among the descendants of `parent`."""
    pending = [parent]
    while pending:
        pid = pending.pop()
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and pid != parent:
            return pid
        pending += [int(c) for c in children]
    raise AssertionError(f"no worker with RANK={rank} under {parent}")


def test_a_dying_rank_ends_the_job_and_keeps_last_pt(tmp_path):
    out = tmp_path / "run"
    job = _torchrun(COMMON + ["--objective", "ae", "--epochs", "100", "--ckpt-every", "2", "--out", str(out)])
    deadline = time.monotonic() + 300
    while not (out / "last.pt").exists():
        assert job.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.5)
    os.kill(_rank_process(job.pid, 1), signal.SIGKILL)
    _, err = job.communicate(timeout=120)
    assert job.returncode != 0
    assert "error: rank 0 stopped at step" in err and "last.pt is intact; --resume continues from it" in err, err
    state = Run(out).load("last")
    assert state["step"] >= 2 and state["step"] % 2 == 0
    assert json.loads((out / "config.json").read_text())["world_size"] == 2


GENERATOR = ["--data", "mnist5k", "--batch-size", "256", "--steps", "6", "--no-batch-norm", "--log-every", "1",
             "--eval-every", "3", "--device", "cpu", "--threads", "1", "--no-progress", "--stage-end-fid", "0"]


def test_cw_generator_on_two_ranks_equals_one_process(tmp_path):
    """Global batch 256 = 2 x 128, chunked ranks (100, 28) against one unchunked process."""
    from training import generator

    ddp = _torchrun(GENERATOR + ["--chunk-size", "100", "--out", str(tmp_path / "ddp")], module="training.generator")
    threads = torch.get_num_threads()
    generator.main(GENERATOR + ["--out", str(tmp_path / "one")])
    torch.set_num_threads(threads)
    _finish(ddp)
    assert len(_losses(tmp_path / "ddp")) == 6
    # The per-step losses agree to 1e-5. Adam's first updates are lr * sign(gradient), so a weight whose gradient
    # cancels to rounding level can move the other way in one run (one weight of 512 x 512 by 1e-3 = lr, measured):
    # the weights are compared as whole tensors (measured: at most 4.1e-4 relative L2)
    _compare(tmp_path / "ddp", tmp_path / "one", "generator", atol=float("inf"), rel_l2=1e-3)
    config = Run(tmp_path / "ddp").config()
    assert (config["world_size"], config["rank_batch_size"], config["batch_norm_rows"]) == (2, 128, None)


@pytest.mark.parametrize("argv, message", [
    (["--loss", "sw"], "--loss sw runs in one process"),
    (["--loss", "cw", "--batch-norm", "--sync-bn"], "--sync-bn needs CUDA"),
])
def test_generator_refusals_under_torchrun(tmp_path, argv, message):
    got = _torchrun(GENERATOR + argv + ["--out", str(tmp_path / "run")], module="training.generator")
    out, err = got.communicate(timeout=300)
    assert got.returncode != 0 and message in err and "Traceback" not in err.split(message)[0][-200:]
