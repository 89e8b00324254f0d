"""FID / KID through clean-fid (training.fid, training.domain, training.evaluate): real digits score far
better than noise, FID falls as a model trains, the Inception path runs from a local TorchScript file and
a missing file is a one-line error, the stage-end domain FID, and the user-facing fixes of issue 12."""
import json
import re
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from training import data, domain, evaluate, fid, plots, sample, train
from training.runs import Run

CLASSIFIER_EPOCHS = 2  # the tests' domain classifier (the default, domain.EPOCHS, is longer)
TINY = dict(data="mnist5k", batch_size=200, eval_every=10, ckpt_every=10, progress=False, device="cpu", threads=1)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A data root whose features/ cache holds a quickly trained mnist5k classifier."""
    root = tmp_path_factory.mktemp("fid")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(domain, "EPOCHS", CLASSIFIER_EPOCHS)
        patch.setattr(evaluate, "STAGE_END_SAMPLES", 500)
        domain.classifier("mnist5k", str(root))
        yield root
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return data.load("mnist5k")


def test_classifier_is_cached_with_checksum_and_accuracy(root, capsys):
    meta = json.loads((root / "features" / "mnist5k-lenet.json").read_text())
    assert meta["test_accuracy"] > 0.8 and meta["test_images"] == 1000 and meta["epochs"] == CLASSIFIER_EPOCHS
    assert meta["sha256"] == domain._sha256(root / "features" / "mnist5k-lenet.pt")
    domain.classifier("mnist5k", str(root))
    assert "training the domain classifier" not in capsys.readouterr().out


def test_classifier_does_not_depend_on_the_thread_count():
    """Every domain FID goes through this network: trained with 1 or 2 threads it must be the same one."""
    images, labels = (t[:600] for t in data.labelled("mnist5k")[:2])
    threads = torch.get_num_threads()
    try:
        nets = []
        for count in (1, 2):
            torch.set_num_threads(count)
            nets.append(domain.train_classifier(images, labels, epochs=1))
            assert torch.get_num_threads() == count
    finally:
        torch.set_num_threads(threads)
    for (name, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values()):
        assert torch.equal(a, b), name


def test_real_digits_score_far_below_noise(root, digits):
    extractor = domain.extractor("mnist5k", str(root))
    reference = extractor.features(fid.to_uint8(digits.train))
    heldout = extractor.features(fid.to_uint8(digits.heldout))
    noise = extractor.features(fid.to_uint8(torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))))
    assert heldout.shape == (1000, 128)
    real_fid, noise_fid = fid.fid(heldout, reference), fid.fid(noise, reference)
    assert 0 <= real_fid < noise_fid / 20, (real_fid, noise_fid)
    assert fid.kid(heldout, reference) < fid.kid(noise, reference) / 20
    assert fid.kid(heldout, reference) == fid.kid(heldout, reference)  # seeded subsets


def test_uint8_as_the_papers_code():
    levels = torch.arange(256).float().div(255).view(1, 1, 1, -1)
    assert torch.equal(fid.to_uint8(levels).view(-1), torch.arange(256, dtype=torch.uint8))
    assert fid.to_uint8(torch.tensor([0.5, 1.5, -1.0]).view(1, 1, 1, 3)).view(-1).tolist() == [127, 255, 0]


def test_fid_falls_as_the_model_trains(root, tmp_path):
    run = tmp_path / "cwae"
    settings = dict(TINY, objective="cwae", data_root=str(root), out=str(run))
    train.train_autoencoder(train.AutoencoderConfig(epochs=1, **settings))   # 20 steps
    shutil.copytree(run, tmp_path / "early")
    train.train_autoencoder(train.AutoencoderConfig(**dict(settings, epochs=15, resume=True)))  # 300 steps
    early, late = (evaluate.fid_kid(Run(r), "domain", 1000, False, torch.device("cpu"))["fid_domain"]
                   for r in (tmp_path / "early", run))
    assert late < 0.7 * early, (early, late)
    assert Run(run).metrics()[-1]["fid_domain"] == late


def test_evaluate_cli_appends_fid_and_kid(root, tmp_path, capsys):
    run = tmp_path / "ae"
    train.train_autoencoder(train.AutoencoderConfig(epochs=1, objective="ae", data_root=str(root), out=str(run), **TINY))
    evaluate.main([str(run), "--fid", "domain", "--kid", "--n", "300", "--device", "cpu"])
    record = Run(run).metrics()[-1]
    assert record["generated"] == 300 and record["step"] == 20 and record["reference"].endswith("4000 images")
    assert np.isfinite(record["fid_domain"]) and np.isfinite(record["kid_domain"])
    assert f"domain FID {record['fid_domain']:.3f}, KID {record['kid_domain']:.5f}" in capsys.readouterr().out


def test_training_cli_writes_the_stage_end_domain_fid(root, tmp_path):
    out = tmp_path / "cw2"
    common = ["--batch-size", "200", "--epochs", "1", "--no-progress", "--device", "cpu", "--threads", "1"]
    train.main(["--data-root", str(root), "--out", str(out)] + common)
    from training import latent

    latent.main(["--ae", str(out)] + common)
    for run in (out, out / "latent"):
        records = [r for r in Run(run).metrics() if "fid_domain" in r]
        assert len(records) == 1 and records[0]["generated"] == 500 and records[0]["fid_domain"] > 0


def test_stage_end_fid_size_is_a_flag_and_0_skips_it(root, tmp_path, capsys):
    common = ["--data-root", str(root), "--batch-size", "400", "--epochs", "1", "--no-progress", "--device", "cpu",
              "--threads", "1"]
    train.main(["--out", str(tmp_path / "small"), "--stage-end-fid", "50"] + common)
    assert [r["generated"] for r in Run(tmp_path / "small").metrics() if "fid_domain" in r] == [50]
    train.main(["--out", str(tmp_path / "none"), "--stage-end-fid", "0"] + common)
    assert not [r for r in Run(tmp_path / "none").metrics() if "fid_domain" in r]
    assert "domain FID" not in capsys.readouterr().out.split("none")[-1]


def test_singular_feature_covariance_is_explained_once(monkeypatch, capsys):
    """Dead ReLU features (constant columns) make the covariance singular: scipy's "Matrix is singular"
    warning is replaced by one note per process, and the value is the Frechet distance all the same."""
    import warnings

    from scipy.linalg import LinAlgWarning

    monkeypatch.setattr(fid, "_noted", [])
    generator = np.random.default_rng(0)
    a, b = generator.normal(size=(300, 12)), generator.normal(0.5, 1.0, size=(300, 12))
    a[:, :4] = b[:, :4] = 0.0  # four dead features
    with warnings.catch_warnings():
        warnings.simplefilter("error", LinAlgWarning)  # a warning that escaped would fail here
        first, second = fid.fid(a, b), fid.fid(a, b)
    assert first == second == pytest.approx(fid.fid(a[:, 4:], b[:, 4:]), rel=1e-6)
    err = capsys.readouterr().err
    assert err.count("note: 4 of the 12 features are constant") == 1 and "Matrix is singular" in err


@pytest.mark.parametrize("n, features, dead", [(500, 128, 3), (50, 128, 0), (2000, 16, 0)])
def test_frechet_is_clean_fids_formula(n, features, dead):
    """Our Frechet distance (written out: clean-fid's calls a scipy argument newer SciPy removed) equals
    clean-fid's fid_from_feats where that still runs: full rank, fewer images than features, dead features."""
    import warnings

    from cleanfid.fid import fid_from_feats

    generator = np.random.default_rng(n)
    a, b = generator.normal(size=(n, features)), generator.normal(0.2, 1.1, size=(n, features))
    a[:, :dead] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fid.frechet(a, b) == pytest.approx(float(fid_from_feats(a, b)), rel=1e-12)


def test_sample_grid_title_is_drawn_above(tmp_path):
    from PIL import Image

    images = torch.rand(16, 1, 28, 28)
    plots.grid(images, tmp_path / "plain.png")
    plots.grid(images, tmp_path / "titled.png", title="D(z), z ~ N(0, I): stage 1 of runs/a-rather-long-name, step 20")
    plain, titled = (Image.open(tmp_path / f) for f in ("plain.png", "titled.png"))
    assert titled.width == plain.width and titled.height >= plain.height + 16
    band = np.asarray(titled.convert("L"))[: titled.height - plain.height]
    assert (band < 128).any() and (band > 128).mean() > 0.5  # dark text on white


@pytest.mark.parametrize("channels,n", [(1, 64), (3, 13)])
def test_a_grid_png_gives_back_its_images(tmp_path, channels, n):
    """read_grid: the 8-bit images a bare grid PNG stores (an odd count fills part of its last row), and
    drawing them again gives the same PNG."""
    images = torch.rand(n, channels, 28, 28)
    plots.grid(images, tmp_path / "a.png")
    back = plots.read_grid(tmp_path / "a.png", n, 28, channels)
    assert back.shape == images.shape and (back - images).abs().max() <= 0.5 / 255 + 1e-6
    plots.grid(back, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def _stand_in_inception(path: Path) -> None:
    """A TorchScript module with the real file's interface as clean-fid uses it: `.layers` maps a
    normalised (B, 3, 299, 299) batch to (B, 2048) features (here 12 pooled values, then zeros)."""

    class Layers(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pooled = nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)
            return torch.cat([pooled, torch.zeros(x.shape[0], 2048 - pooled.shape[1])], 1)

    class StandIn(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = Layers()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers(x)

    torch.jit.script(StandIn()).save(str(path))


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tried the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture()
def ae_run(root, tmp_path):
    run = tmp_path / "ae"
    train.train_autoencoder(train.AutoencoderConfig(epochs=1, objective="ae", data_root=str(root), out=str(run), **TINY))
    return run


def test_inception_without_weights_is_a_one_line_error(ae_run, tmp_path, monkeypatch, capsys):
    _no_network(monkeypatch)
    missing = tmp_path / "nowhere" / fid.INCEPTION_FILE
    monkeypatch.setattr(fid, "CLEANFID_WEIGHTS", str(missing))
    for argv in ([], ["--inception-weights", str(missing)]):
        with pytest.raises(SystemExit) as exit_info:
            evaluate.main([str(ae_run), "--fid", "inception", "--device", "cpu"] + argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and err.count("\n") == 1 and str(missing) in err and "Traceback" not in err


def test_inception_path_runs_with_a_stand_in_model(ae_run, tmp_path, monkeypatch, capsys):
    _no_network(monkeypatch)
    weights = tmp_path / "stand-in.pt"
    _stand_in_inception(weights)
    evaluate.main([str(ae_run), "--fid", "inception", "--inception-weights", str(weights), "--kid", "--n", "24",
                   "--n-real", "24", "--device", "cpu"])
    record = Run(ae_run).metrics()[-1]
    assert record["features"] == "inception (stand-in.pt)" and record["reference"].endswith("24 images")
    assert np.isfinite(record["fid_inception"]) and record["fid_inception"] > 0 and np.isfinite(record["kid_inception"])


def test_domain_fid_needs_labelled_data(tmp_path):
    with pytest.raises(Exception, match="no domain feature extractor for --data folder:x"):
        domain.classifier("folder:x", str(tmp_path))


def test_missing_image_folder_says_no_such_folder(tmp_path):
    with pytest.raises(data.DataUnavailable, match=f"folder:{tmp_path / 'gone'}: no such folder"):
        data.load(f"folder:{tmp_path / 'gone'}")


def test_celeba_without_gdown_names_gdown(monkeypatch, tmp_path):
    import torchvision.datasets

    def no_gdown(*args, **kwargs):  # torchvision's own message when gdown is not installed
        raise RuntimeError("To download files from GDrive, 'gdown' is required. You can install it with "
                           "'pip install gdown'.")

    monkeypatch.setattr(torchvision.datasets, "CelebA", no_gdown)
    with pytest.raises(data.DataUnavailable, match="needs the Python package gdown") as error:
        data.load("celeba", str(tmp_path))
    assert "network" not in str(error.value) and str(tmp_path / "celeba" / "list_eval_partition.txt") in str(error.value)


def test_interpolations_of_a_stage_1_run_are_a_clear_error(ae_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sample.main([str(ae_run), "--interpolations", "--device", "cpu"])
    assert exit_info.value.code == 2 and "--interpolations needs a stage-2 run" in capsys.readouterr().err


def test_pictures_are_labelled(tmp_path):
    from PIL import Image

    images = torch.rand(16, 1, 28, 28)
    plots.grid(images, tmp_path / "plain.png")
    plots.reconstructions(images[:8], images[8:], tmp_path / "labelled.png")
    plain, labelled = (Image.open(tmp_path / f) for f in ("plain.png", "labelled.png"))
    assert labelled.height == plain.height and labelled.width > plain.width + 40
    margin = np.asarray(labelled.convert("L"))[:, : labelled.width - plain.width]
    assert (margin < 128).any() and (margin > 128).mean() > 0.5  # dark text on white


@pytest.mark.parametrize("page", ["README.md", "docs/training.md"])
def test_readme_steps_only_use_runs_that_exist_after_the_demo(page):
    """Every run folder a command of the README (or of docs/training.md) reads was made by `make demo`
    (runs/demo, runs/demo/latent) or by an earlier command of the same page."""
    text = (Path(__file__).parents[1] / page).read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    commands = [line.split("#")[0] for block in blocks for line in block.splitlines() if "training." in line]
    assert len(commands) >= (5 if page == "README.md" else 3)
    made = {"runs/demo", "runs/demo/latent"}
    for command in commands:
        written = re.search(r"--out (runs/\S+)", command)
        if written and "--resume" not in command:
            made.add(written.group(1))
        if "training.latent" in command:
            made.add(re.search(r"--ae (\S+)", command).group(1) + "/latent")
        for read in re.findall(r"(?:--ae |training\.\w+ +)(runs/\S+)", command) + (
                re.findall(r"--out (runs/\S+)", command) if "--resume" in command else []):
            assert read in made, f"{page}: a command reads {read}, which no earlier step creates: {command}"


def test_compare_table_gives_mean_and_std_and_the_ordering():
    from training import compare

    rows = [{"model": model, "objective": objective, "seed": seed, "fid_domain": fid_value + seed,
             "kid_domain": 0.1, "heldout_metric": 0.01, "reconstruction_error": 50.0 if "+" not in model else None,
             "features": "domain (LeNet x)", "reused": False}
            for seed in (0, 1, 2)
            for model, objective, fid_value in (("AE", "ae", 30), ("AE+LT", "ae", 20), ("CW²", "cw2", 10),
                                                ("LCW (CW²+LT)", "cw2", 12))]
    text = compare.table(rows, [0, 1, 2], 10000, 600)
    assert "| AE | 3 | 31.00 ± 1.00 | 0.100 ± 0.000 | 0.01000 ± 0.00000 | 50.0 ± 0.0 | 52 | 11 |" in text
    assert "| AE+LT | 3 | 21.00 ± 1.00 |" in text and "| – | 22 | – |" in text
    assert "AE+LT < AE; LCW (CW²+LT) >= CW²; lowest: CW²" in text and "Wall time 10 min" in text


def test_an_empty_cache_takes_the_committed_mnist5k_classifier(tmp_path, capsys):
    """mnist5k's LeNet is committed (training/reference): an empty cache gets a copy instead of a retraining
    (which on another CPU would give another network and other FIDs), the same bytes as the reference."""
    epochs = json.loads((domain.REFERENCE / "mnist5k-lenet.json").read_text())["epochs"]  # this module shortens EPOCHS
    model, meta = domain.classifier("mnist5k", str(tmp_path), epochs=epochs)
    out = capsys.readouterr().out
    assert "training the domain classifier" not in out and "the committed LeNet b845d9d09a3d" in out
    reference = domain.REFERENCE / "mnist5k-lenet.pt"
    assert meta["sha256"] == domain._sha256(reference) == domain._sha256(tmp_path / "features" / "mnist5k-lenet.pt")
    assert not model.training
    domain.classifier("mnist5k", str(tmp_path), epochs=epochs)
    assert "committed" not in capsys.readouterr().out  # from the cache now
