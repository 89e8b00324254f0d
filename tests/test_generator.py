"""training.generator, the data-space CW- and SW-Generators: a chunked step equals the unchunked one
(float64 networks without BatchNorm: per-step losses and parameters to 1e-10; float32: the first
step's gradient to 1e-6 relative L2), resume is exact, config.json records what BatchNorm normalised
over, and bad settings are one-line errors. The torchrun run is in test_torchrun.py, the SW distance
itself in test_sliced.py, its bad settings in test_training.py."""
import pytest
import torch

from helpers import assert_close, train_steps
from training import data, generator, models
from training.runs import Run
from training.world import World

STEPS = 10
BATCH = 512
CPU = World(torch.device("cpu"))
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def batches():
    images = data.load("mnist5k")
    return [images.train[data.epoch_order(len(images), 0, step)[:BATCH]] for step in range(STEPS)]


def _stage(loss, batch_norm=False, gamma=0.0117):
    torch.manual_seed(0)
    model = models.DataGenerator((1, 28, 28), 8, batch_norm=batch_norm)
    return generator.generator_stage(model, loss, gamma, 300, CPU)


@pytest.mark.parametrize("loss, gamma", [("cw", 0.0117), ("cw", "silverman"), ("sw", None)])
def test_chunked_steps_equal_unchunked_in_float64(batches, loss, gamma):
    (losses, _, state), (ref_losses, _, ref_state) = (
        train_steps(_stage(loss, gamma=gamma), batches, chunk, lr=1e-3) for chunk in (100, None))  # 100 x 5 + 12
    assert_close(losses, ref_losses, rtol=1e-10, name="per-step losses")
    for name, ref in ref_state.items():
        assert_close(state[name], ref, rtol=1e-10, atol=1e-12, name=name)


@pytest.mark.parametrize("loss", ["cw", "sw"])
def test_float32_chunked_first_step_gradient_equals_unchunked(batches, loss):
    (_, chunked, _), (_, whole, _) = (train_steps(_stage(loss, batch_norm=True), batches[:1], chunk,
                                                  dtype=torch.float32) for chunk in (BATCH, None))
    # with BatchNorm a chunk of the whole batch is the whole batch: the two passes must still agree
    assert_close(chunked[0], whole[0], atol=float("inf"), rel_l2=1e-6, name="float32 gradient")
    (_, chunked, _), (_, whole, _) = (train_steps(_stage(loss), batches[:1], chunk, dtype=torch.float32)
                                      for chunk in (128, None))
    assert_close(chunked[0], whole[0], atol=float("inf"), rel_l2=1e-6, name="float32 gradient, 4 chunks")


SMOKE = dict(data="mnist5k", batch_size=400, eval_every=5, ckpt_every=5, log_every=1, progress=False, device="cpu",
             threads=1, projections=200)


@pytest.mark.parametrize("loss", ["cw", "sw"])
def test_resume_continues_exactly(tmp_path, loss):
    settings = dict(SMOKE, loss=loss, chunk_size=150)
    whole = generator.train_generator(generator.GeneratorConfig(out=str(tmp_path / "whole"), steps=10, **settings))
    generator.train_generator(generator.GeneratorConfig(out=str(tmp_path / "split"), steps=5, **settings))
    resumed = generator.train_generator(generator.GeneratorConfig(out=str(tmp_path / "split"), resume=True, steps=10,
                                                                  progress=False, device="cpu", threads=1))
    losses = lambda run: [(r["step"], r["loss"]) for r in Run(run).metrics() if "loss" in r]
    assert losses(tmp_path / "split") == losses(tmp_path / "whole") and len(losses(tmp_path / "whole")) == 10
    assert resumed["heldout_metric"] == whole["heldout_metric"] and resumed["val_loss"] == whole["val_loss"]
    config = Run(tmp_path / "split").config()
    assert (config["stage"], config["loss"], config["steps"], config["batch_norm_rows"]) == ("generator", loss, 10, 150)
    for name in ("samples.png", "loss.png", "last.pt", "best.pt"):
        assert (tmp_path / "split" / name).exists(), name


def test_sample_and_evaluate_take_a_generator_run(tmp_path):
    from training import sample
    from training.evaluate import fid_kid

    generator.train_generator(generator.GeneratorConfig(out=str(tmp_path / "g"), steps=2, loss="cw", **SMOKE))
    out = sample.sample(sample.SampleConfig(run=str(tmp_path / "g"), n=16, out=str(tmp_path / "s.png")))
    assert out.endswith("s.png") and (tmp_path / "s.png").exists()
    record = fid_kid(Run(tmp_path / "g"), "domain", 500, False, torch.device("cpu"))
    assert record["fid_domain"] > 0 and record["generated"] == 500
