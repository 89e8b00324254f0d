"""Training: model shapes, objectives against direct formulas, smoke runs of both stages, exact
resume, the non-finite stop, the offline-download message, every CLI's --help and one-line errors, and
the newcomer fixes of issue 19 (titled grids, printed paths, the stale-encoder warning)."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lcw_fast
from helpers import assert_close
from lcw_fast import reference
from training import (compare, data, defaults, demo, errors, evaluate, generator, latent, loop, models, objectives,
                      sample, train)
from training.runs import Run
from training.world import World

# the stage-1 config.json of a run from before the MLPs had BatchNorm
TRAIN_CONFIG_BEFORE_BN = {"data": "mnist5k", "objective": "cw2", "latent": 8, "epochs": 1, "batch_size": 64,
                          "lr": 2e-3, "lam": 1.0, "gamma": "auto", "seed": 0, "stage": 1, "shape": [1, 28, 28]}
SMOKE = dict(data="mnist5k", epochs=1, batch_size=200, eval_every=10, ckpt_every=10, progress=False, device="cpu",
             threads=1)


@pytest.fixture(autouse=True, scope="module")
def _keep_threads():
    """The runs here use one thread (fastest for the small MLPs); other test files keep PyTorch's default."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("shape,latent_dim", [((1, 28, 28), 8), ((3, 64, 64), 16)])
def test_autoencoder_shapes(shape, latent_dim):
    model = models.Autoencoder(shape, latent_dim)
    x = torch.rand(3, *shape)
    x_hat, z = model(x)
    assert z.shape == (3, latent_dim) and x_hat.shape == (3, *shape)
    assert x_hat.min() >= 0 and x_hat.max() <= 1
    assert model.decoder(torch.randn(5, latent_dim)).shape == (5, *shape)


def test_mlp_autoencoder_architecture():
    """The authors' code: 3 x (Linear 256, BatchNorm, ReLU) each way; --no-batch-norm drops the BatchNorm."""
    model = models.Autoencoder((1, 28, 28), 8)
    for net in (model.encoder, model.decoder):
        assert sum(isinstance(m, nn.BatchNorm1d) for m in net) == 3
        assert [m.out_features for m in net if isinstance(m, nn.Linear)][:3] == [256] * 3
    plain = models.Autoencoder((1, 28, 28), 8, mlp_width=200, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in plain.modules())


def test_run_from_before_batch_norm_loads(tmp_path):
    """A run folder written before the MLPs had BatchNorm (config.json without batch_norm / mlp_width)
    loads as the 200-unit network it was."""
    old = models.Autoencoder((1, 28, 28), 8, mlp_width=200, batch_norm=False)
    run = Run(tmp_path / "old")
    run.start({**TRAIN_CONFIG_BEFORE_BN, "out": str(run.path)}, resume=False)
    run.save("last", {"step": 0, "best_val": float("inf"), "models": {"autoencoder": old.state_dict()}})
    loaded = models.load_autoencoder(run, torch.device("cpu"))
    x = torch.rand(4, 1, 28, 28)
    assert_close(loaded(x)[0], old.eval()(x)[0], name="reconstructions")


def test_resume_of_a_run_from_before_batch_norm_keeps_its_network(tmp_path, monkeypatch):
    """--resume of a pre-BatchNorm run (200 units, config.json without batch_norm / mlp_width) continues
    that network instead of building the new one."""
    monkeypatch.setattr(train, "MLP_WIDTH", 200)
    out = tmp_path / "old"
    train.train_autoencoder(train.AutoencoderConfig(out=str(out), batch_norm=False, **SMOKE))
    config = json.loads((out / "config.json").read_text())
    legacy = {k: v for k, v in config.items() if k not in ("batch_norm", "mlp_width")}
    (out / "config.json").write_text(json.dumps(legacy))
    monkeypatch.undo()
    train.train_autoencoder(train.AutoencoderConfig(out=str(out), resume=True, epochs=2, progress=False, device="cpu",
                                                    threads=1))
    resumed = Run(out).config()
    assert (resumed["mlp_width"], resumed["batch_norm"]) == (200, False)
    assert Run(out).load("last")["step"] == 40  # 2 epochs of 4,000 digits in batches of 200


def test_latent_generator_shapes():
    lg = models.LatentGenerator(noise=3, latent=8)
    assert lg(torch.randn(7, 3)).shape == (7, 8)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in lg.net) == 5 and lg.net[0].out_features == 512


def test_latent_generator_standardised_coordinates():
    lg = models.LatentGenerator(noise=3, latent=2).eval()
    encodings = torch.randn(500, 2) * torch.tensor([10.0, 0.1]) + torch.tensor([5.0, -1.0])
    lg.set_coordinates(encodings)
    standardised = lg.standardise(encodings)
    assert_close(standardised.mean(0), torch.zeros(2), atol=1e-5, name="mean")
    assert_close(standardised.std(0), torch.ones(2), atol=1e-5, name="std")
    z = torch.randn(4, 3)
    assert_close(lg(z), lg.mean + lg.std * lg.net(z), atol=1e-6, name="LG(z)")
    restored = models.LatentGenerator(noise=3, latent=2)
    restored.load_state_dict(lg.state_dict())
    assert_close(restored.std, lg.std, name="std buffer")


def test_objectives_match_direct_formulas():
    x, x_hat, z = torch.rand(6, 1, 4, 4), torch.rand(6, 1, 4, 4), torch.randn(6, 5)
    lam, gamma = 0.7, 0.05
    sse = ((x_hat - x) ** 2).sum(dim=(1, 2, 3)).mean()
    normality = reference.cw_normality(z.double(), lcw_fast.normality_gamma(6))
    images = reference.cw_distance(x_hat.flatten(1).double(), x.flatten(1).double(), gamma)
    expected = {"ae": sse, "cwae": sse + lam * normality.log(), "cw2": images.log() + lam * normality.log()}
    for name, value in expected.items():
        got = objectives.autoencoder_loss(name, x, x_hat, z, lam, gamma)
        assert_close(got, value.float(), rtol=1e-5, atol=1e-6, name=name)
    g, e = torch.randn(6, 5), torch.randn(9, 5)
    assert_close(objectives.latent_trick_loss(g, e, gamma), reference.cw_distance(g.double(), e.double(), gamma).float(),
                 rtol=1e-5, atol=1e-7, name="lt")


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """20 steps of stage 1 (cw2) then 20 steps of stage 2 on mnist5k, CPU."""
    root = tmp_path_factory.mktemp("smoke")
    first = train.train_autoencoder(train.AutoencoderConfig(objective="cw2", out=str(root / "cw2"), **SMOKE))
    second = latent.train_latent(latent.LatentConfig(ae=str(root / "cw2"), epochs=1, batch_size=200, eval_every=10,
                                                     ckpt_every=10, progress=False, device="cpu", threads=1))
    return root, first, second


def test_smoke_both_stages(smoke_runs):
    root, first, second = smoke_runs
    assert first["step"] == second["step"] == 20
    for summary in (first, second):
        assert 0 < summary["heldout_metric"] < float("inf")
    stage1, stage2 = root / "cw2", root / "cw2" / "latent"
    for name in ("config.json", "metrics.jsonl", "last.pt", "best.pt", "samples.png", "reconstructions.png", "loss.png"):
        assert (stage1 / name).stat().st_size > 0, name
    for name in ("config.json", "metrics.jsonl", "last.pt", "best.pt", "samples.png", "interpolations.png", "loss.png"):
        assert (stage2 / name).stat().st_size > 0, name
    records = Run(stage1).metrics()
    assert {"loss", "images_per_s"} <= records[0].keys()
    assert {"val_loss", "reconstruction_error", "latent_normality"} <= records[1].keys()
    assert records[-1]["heldout_metric"] == first["heldout_metric"]
    assert Run(stage2).metrics()[-1]["heldout_metric_stage1"] == first["heldout_metric"]


def test_sample_cli(smoke_runs, tmp_path, capsys):
    root, _, _ = smoke_runs
    out = tmp_path / "grid.png"
    sample.main([str(root / "cw2" / "latent"), "--n", "6", "--out", str(out), "--interpolations", "--device", "cpu"])
    assert out.stat().st_size > 0 and (tmp_path / "grid-interpolations.png").stat().st_size > 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"samples: {out}", f"interpolations: {tmp_path / 'grid-interpolations.png'}"]
    sample.main([str(root / "cw2"), "--n", "4", "--out", str(tmp_path / "ae.png"), "--device", "cpu"])
    assert (tmp_path / "ae.png").stat().st_size > 0
    sample.main([str(root / "cw2"), "--n", "4", "--out", str(tmp_path / "folder"), "--device", "cpu"])
    assert (tmp_path / "folder" / "samples-seed0.png").stat().st_size > 0


@pytest.mark.parametrize("cli, argv", [(sample, ["{missing}"]), (latent, ["--ae", "{missing}"]),
                                       (train, ["--out", "{missing}", "--resume"])])
def test_missing_run_folder_is_a_clean_error(cli, argv, tmp_path, capsys):
    missing = tmp_path / "no-run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main([a.format(missing=missing) for a in argv])
    assert exit_info.value.code == 1
    assert f"error: {missing} is not a run folder (no config.json)" in capsys.readouterr().err
    assert not missing.exists()


def test_sample_grids_say_which_generator_drew_them(smoke_runs):
    root, _, _ = smoke_runs
    assert plots_title(root / "cw2", 1, 20) == f"D(z), z ~ N(0, I): stage 1 of {root / 'cw2'}, step 20"
    assert plots_title(root / "cw2" / "latent", 2, 20, 3).startswith("D(LG(z')), z' ~ N(0, I): stage 2 of ")
    assert plots_title(root / "cw2" / "latent", 2, 20, 3).endswith(", step 20, noise seed 3")
    from PIL import Image

    for run in (root / "cw2", root / "cw2" / "latent"):  # written by the training CLIs with a title band
        picture = np.asarray(Image.open(run / "samples.png").convert("L"))
        assert picture.shape[0] > picture.shape[1] and (picture[:10] < 128).any()


def test_a_title_band_wraps_wide_letters_inside_the_picture():
    """Wrapping at the title's average letter width let a line of wide letters run off the right edge."""
    from training import plots

    title = "G(z), z ~ N(0, I): data-space generator of runs/batch-study/swg-b4000-seed0, step 10000, noise seed 0"
    picture = np.asarray(plots.grid_picture(torch.zeros(64, 1, 28, 28), 8, None, title).convert("L"))
    band = picture[:picture.shape[0] - 242]  # the title band above the 242-pixel grid
    assert picture.shape[1] == 242 and (band < 128).any() and (band[:, -3:] > 128).all()


def plots_title(run, stage, step, seed=None):
    from training import plots

    return plots.samples_title(run, stage, step, seed)


def test_sampling_warns_when_stage_1_moved_after_stage_2(smoke_runs, tmp_path, capsys):
    """Stage 2 records the stage-1 checkpoint's step and encoder fingerprint; sampling after stage 1 was
    resumed warns, naming both steps and the command that retrains stage 2."""
    root, _, _ = smoke_runs
    stage1, stage2 = tmp_path / "cw2", tmp_path / "cw2" / "latent"
    shutil.copytree(root / "cw2", stage1)
    config = json.loads((stage2 / "config.json").read_text())
    assert config["ae_step"] == 20 and len(config["ae_encoder_sha256"]) == 64
    (stage2 / "config.json").write_text(json.dumps({**config, "ae": str(stage1), "out": str(stage2)}))
    sample.main([str(stage2), "--n", "4", "--out", str(tmp_path / "before.png"), "--device", "cpu"])
    assert "warning" not in capsys.readouterr().err
    original = (root / "cw2" / "last.pt").read_bytes()
    train.train_autoencoder(train.AutoencoderConfig(out=str(stage1), resume=True, epochs=2, progress=False,
                                                    device="cpu", threads=1))
    assert (root / "cw2" / "last.pt").read_bytes() == original  # the copy resumed, not the folder it came from
    sample.main([str(stage2), "--n", "4", "--out", str(tmp_path / "after.png"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert f"warning: {stage2}: LG was trained on the encoder of {stage1}/last.pt at step 20" in err
    assert "now step 40" in err and f"python -m training.latent --ae {stage1} --overwrite" in err


def test_resume_continues_exactly(tmp_path):
    settings = dict(SMOKE, objective="ae", batch_size=400, chunk_size=150)  # 10 steps per epoch, chunked
    whole = train.train_autoencoder(train.AutoencoderConfig(out=str(tmp_path / "whole"), **dict(settings, epochs=2)))
    train.train_autoencoder(train.AutoencoderConfig(out=str(tmp_path / "split"), **settings))
    resumed = train.train_autoencoder(train.AutoencoderConfig(out=str(tmp_path / "split"), resume=True, epochs=2,
                                                              progress=False, device="cpu", threads=1))
    assert Run(tmp_path / "split").config()["chunk_size"] == 150
    losses = lambda run: [(r["step"], r["loss"]) for r in Run(run).metrics() if "loss" in r]
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")
    assert resumed["heldout_metric"] == whole["heldout_metric"]
    assert resumed["val_loss"] == whole["val_loss"]


def test_latent_resume_continues_exactly(smoke_runs, tmp_path):
    ae = str(smoke_runs[0] / "cw2")
    settings = dict(ae=ae, batch_size=400, eval_every=10, ckpt_every=10, progress=False, device="cpu", threads=1)
    whole = latent.train_latent(latent.LatentConfig(out=str(tmp_path / "whole"), epochs=2, **settings))
    latent.train_latent(latent.LatentConfig(out=str(tmp_path / "split"), epochs=1, **settings))
    resumed = latent.train_latent(latent.LatentConfig(out=str(tmp_path / "split"), resume=True, epochs=2,
                                                      progress=False, device="cpu", threads=1))
    losses = lambda run: [(r["step"], r["loss"]) for r in Run(run).metrics() if "loss" in r]
    assert losses(tmp_path / "split") == losses(tmp_path / "whole") and len(losses(tmp_path / "whole")) == 2
    assert resumed["heldout_metric"] == whole["heldout_metric"]


def test_existing_runs_are_refused(smoke_runs, capsys):
    stage1 = smoke_runs[0] / "cw2"
    before = {f: (stage1 / f).read_bytes() for f in ("config.json", "metrics.jsonl", "last.pt")}
    for cli, argv in ((train, ["--out", str(stage1)]), (latent, ["--ae", str(stage1)])):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv + ["--device", "cpu", "--no-progress"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and "Traceback" not in err
        assert "already holds a run: --resume continues it, --overwrite replaces it" in err
    assert before == {f: (stage1 / f).read_bytes() for f in before}


def test_resume_before_the_first_checkpoint_starts_over_and_overwrite_replaces(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--out", str(out), "--objective", "ae", "--epochs", "1", "--batch-size", "2000", "--log-every", "1",
            "--device", "cpu", "--threads", "1", "--no-progress"]
    train.main(argv)
    first = Run(out).metrics()
    for name in ("last.pt", "best.pt"):  # as if killed before its first checkpoint
        (out / name).unlink()
    train.main(["--out", str(out), "--resume", "--device", "cpu", "--no-progress"])
    assert "has no checkpoint yet (the run stopped before its first one): starting from step 0" in capsys.readouterr().err
    assert [r["step"] for r in Run(out).metrics()] == [r["step"] for r in first]
    train.main(argv + ["--overwrite"])
    losses = lambda records: [r["loss"] for r in records if "loss" in r]
    assert losses(Run(out).metrics()) == losses(first) and len(losses(first)) == 2
    with pytest.raises(SystemExit):
        train.main(argv + ["--overwrite", "--resume"])
    assert "give one of them" in capsys.readouterr().err


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    torch.manual_seed(0)
    net = nn.Linear(3, 1)

    def loss(x, out):
        value = out[0].square().mean()
        return value * float("nan") if step_of(x) == 15 else value

    inputs = [torch.full((4, 3), float(i)) / 20 for i in range(40)]
    step_of = lambda x: int(round(x[0, 0].item() * 20))
    stage = loop.Stage({"net": net}, net, lambda x, rng: (x,), lambda x: (net(x),), loss, lambda: {"val_loss": 0.0})
    cfg = loop.LoopConfig(steps=40, lr=1e-2, eval_every=5, ckpt_every=5, progress=False)
    run = Run(tmp_path)
    with pytest.raises(errors.NonFiniteLoss, match=r"loss is nan at step 15.*last.pt"):
        loop.fit(stage, lambda start: iter(inputs[start:]), cfg, run, World(torch.device("cpu")))
    state = run.load("last")
    assert state["step"] == 15
    assert all(torch.isfinite(t).all() for t in state["models"]["net"].values())
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("name,files", [("mnist", "MNIST/raw/train-images-idx3-ubyte.gz"),
                                        ("fmnist", "FashionMNIST/raw/t10k-labels-idx1-ubyte.gz"),
                                        ("celeba", "celeba/list_eval_partition.txt")])
def test_offline_download_message(monkeypatch, tmp_path, capsys, name, files):
    import torchvision.datasets

    def unreachable(*args, **kwargs):
        raise RuntimeError("Error downloading: <urlopen error [Errno -3] Temporary failure in name resolution>")

    for cls in ("MNIST", "FashionMNIST", "CelebA"):
        monkeypatch.setattr(torchvision.datasets, cls, unreachable)
    with pytest.raises(errors.DataUnavailable, match="place these files by hand") as error:
        data.load(name, str(tmp_path))
    assert str(tmp_path / files) in str(error.value)
    with pytest.raises(SystemExit) as exit_:
        train.main(["--data", name, "--data-root", str(tmp_path), "--out", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and str(tmp_path / files) in err and "Traceback" not in err


@pytest.mark.parametrize("cli,flag", [(train, "--objective"), (latent, "--ae"), (sample, "--interpolations"),
                                      (demo, "--out"), (compare, "--seeds"), (evaluate, "--inception-weights")])
def test_cli_help(capsys, cli, flag):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0 and flag in capsys.readouterr().out


@pytest.mark.parametrize("cli, argv, message", [
    (train, ["--lr", "-1"], "--lr must be > 0, got -1.0"),
    (train, ["--epochs", "0"], "--epochs must be > 0, got 0"),
    (train, ["--lam", "-0.5"], "--lam must be >= 0, got -0.5"),
    (latent, ["--ae", "x", "--batch-size", "0"], "--batch-size must be > 0, got 0"),
    (sample, ["x", "--n", "0"], "--n must be > 0, got 0"),
])
def test_out_of_range_flags_are_clean_errors(cli, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1 and "usage" not in err


@pytest.mark.parametrize("cli, argv, message", [
    (train, ["--gamma", "-1"], "--gamma must be positive and finite, got -1"),
    (train, ["--data", "foo"],
     "--data must be mnist5k, stacked-mnist5k, mnist, fmnist, celeba or folder:PATH, got 'foo'"),
    (train, ["--batch-size", "100000"], "--batch-size 100000 exceeds the 4000 training examples"),
    (generator, ["--loss", "banana"], "invalid choice: 'banana'"),
    (generator, ["--projections", "0"], "--projections must be > 0, got 0"),
    (generator, ["--batch-size", "5000"], "--batch-size 5000 exceeds the 4000 training images of mnist5k"),
    (generator, ["--gamma", "wide"], "--gamma must be auto, silverman or a number, got 'wide'"),
])
def test_bad_training_settings_are_clean_errors(cli, argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv + ["--out", str(tmp_path / "run"), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("cli, argv", [
    (train, ["--lr", "-1"]),                          # a field's minimum, checked while parsing
    (train, ["--objective", "vae"]),                  # argparse's own choices
    (train, ["--no-such-flag"]),                      # argparse's own unknown flag
    (train, ["--gamma", "-1", "--device", "cpu"]),    # checked once training starts
    (train, ["--device", "cuda"]),                    # no GPU
    (latent, ["--device", "cuda:0", "--ae", "x"]),
    (sample, ["x", "--device", "cuda"]),
    (evaluate, ["x", "--device", "cuda"]),
    (demo, ["--device", "cuda"]),
    (compare, ["--objectives", "vae"]),
])
def test_every_flag_error_is_one_line_and_exit_status_2(cli, argv, tmp_path, monkeypatch, capsys):
    """One convention for every training CLI: `python -m training.X: error: ...`, one line, status 2 for a
    flag error wherever it is found (parsing or later); other user errors are status 1."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)  # nothing is written, but if it were, not into the checkout
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    module = cli.__name__
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"python -m {module}: error: ") and "Traceback" not in err
    if any(a.startswith("cuda") for a in argv):
        assert "no CUDA GPU is visible here" in err and "--device cpu" in err
    with pytest.raises(SystemExit) as exit_info:
        sample.main([str(tmp_path / "not-a-run"), "--device", "cpu"])
    assert exit_info.value.code == 1 and capsys.readouterr().err.startswith("python -m training.sample: error: ")


def test_help_gives_the_batch_defaults_that_are_used(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    small, large = map(int, re.search(r"default: (\d+) for 28x28 data, (\d+) for CelebA",
                                      " ".join(capsys.readouterr().out.split())).groups())
    for objective in objectives.STAGE1:
        assert defaults.stage1("mnist5k", (1, 28, 28), objective)["batch_size"] == small
        assert defaults.stage1("celeba", (3, 64, 64), objective)["batch_size"] == large


def test_the_docs_gamma_example_is_the_mnist5k_default():
    """docs/training.md's --gamma auto example is Silverman's gamma at mnist5k's pixel std and default batch."""
    text = (Path(__file__).parents[1] / "docs" / "training.md").read_text()
    batch, gamma = re.search(r"mnist5k, batch (\d+): ([0-9.]+)", text).groups()
    assert int(batch) == defaults.stage1("mnist5k", (1, 28, 28), "cw2")["batch_size"]
    expected = lcw_fast.silverman_gamma(data.pixel_std(data.load("mnist5k")), int(batch))
    assert float(gamma) == pytest.approx(expected, abs=5e-5)
