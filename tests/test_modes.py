"""Stacked MNIST (training.stacked) and its mode-collapse evaluator (training.modes): the evaluator scores
26,000 stacked held-out real images at >= 990 of the 1,000 modes with KL < 0.1, a generator of one image
at 1 mode, a generator of digits 0-4 at <= 125 modes; the data set re-draws its triples every epoch from
(seed, epoch), keeps its held-out images fixed, resumes exactly and draws in colour; every stage runs on
it and scores its modes at the end."""
import json
import math

import numpy as np
import pytest
import torch

from training import data, domain, evaluate, generator, latent, modes, plots, sample, stacked, train
from training.runs import Run

REAL_IMAGES = 26000


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A data root whose features/ cache holds the default mnist5k classifier (domain.EPOCHS, seeded)."""
    root = tmp_path_factory.mktemp("modes")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    domain.classifier("mnist5k", str(root))
    torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="module")
def digits():
    return data.load("mnist5k")


@pytest.fixture(scope="module")
def images():
    return data.load("stacked-mnist5k")


def _stand_in_run(path, root, pool: torch.Tensor, monkeypatch):
    """A run folder of stacked data whose "generator" returns the images of `pool` in order, one per noise
    row (training.sample.generator is replaced): the evaluator's path from a run to its record."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"stage": "generator", "data": "stacked-mnist5k",
                                                  "data_root": str(root)}))
    torch.save({"step": 0}, path / "last.pt")
    drawn = [0]

    def generate(z):
        start, drawn[0] = drawn[0], drawn[0] + len(z)
        return pool[start:start + len(z)]

    monkeypatch.setattr(sample, "generator", lambda run, device, checkpoint="last": (4, generate))
    return path


def _modes(tmp_path, root, pool, monkeypatch, capsys):
    run = _stand_in_run(tmp_path / "run", root, pool, monkeypatch)
    evaluate.main([str(run), "--modes", "--device", "cpu"])
    record = Run(run).metrics()[-1]
    assert record["generated"] == REAL_IMAGES and record["evaluation"] == "modes"
    assert f"{record['modes']} of 1000 modes hit" in capsys.readouterr().out
    return record


def test_real_stacked_images_hit_nearly_every_mode(root, digits, tmp_path, monkeypatch, capsys):
    record = _modes(tmp_path, root, stacked.draw(digits.heldout, REAL_IMAGES, 123), monkeypatch, capsys)
    assert record["modes"] >= 990 and record["modes_kl"] < 0.1, record


def test_one_image_is_one_mode(root, digits, tmp_path, monkeypatch, capsys):
    pool = stacked.draw(digits.heldout, 1, 0).expand(REAL_IMAGES, -1, -1, -1)
    record = _modes(tmp_path, root, pool, monkeypatch, capsys)
    assert record["modes"] == 1 and record["modes_kl"] == pytest.approx(0.998 * math.log(1000), abs=1e-4)


def test_digits_0_to_4_hit_at_most_125_modes(root, tmp_path, monkeypatch, capsys):
    """Held-out digits 0-4 that the classifier reads as such (it reads about 5% of digits wrong, and at
    26,000 images each misread channel would open a mode outside the 125: 370 modes with every digit 0-4)."""
    classifier, _ = domain.classifier("mnist5k", str(root))
    _, _, test_x, test_y = data.labelled("mnist5k")
    with torch.no_grad():
        read = classifier(test_x).argmax(1)
    low = test_x[(test_y < 5) & (read == test_y)]
    record = _modes(tmp_path, root, stacked.draw(low, REAL_IMAGES, 5), monkeypatch, capsys)
    assert record["modes"] <= 125 and record["modes"] >= 120, record


def test_kl_is_the_authors_kl_of_uniform_against_generated():
    """KL(U || P) with 1e-6 added to P, as torch.nn.functional.kl_div(log(p + 1e-6), U) in the authors'
    evaluator."""
    for histogram in (torch.randint(0, 40, (1000,)), torch.zeros(1000, dtype=torch.int64).index_fill_(0, torch.arange(7), 3)):
        p = histogram.float() / histogram.sum() + 1e-6
        theirs = torch.nn.functional.kl_div(p.log().unsqueeze(0), torch.full((1, 1000), 0.001), reduction="sum")
        assert modes.kl_uniform(histogram) == pytest.approx(theirs.item(), rel=1e-5, abs=1e-6)
        assert modes.modes_hit(histogram) == int((histogram > 0).sum())
    assert modes.kl_uniform(torch.ones(1000)) == pytest.approx(-math.log1p(1e-3), abs=1e-9)  # uniform: ~0


def test_mode_is_100_red_10_green_blue():
    class Reads(torch.nn.Module):  # "classifies" a channel as its constant pixel value * 10
        def forward(self, x):
            return torch.nn.functional.one_hot((x[:, 0, 0, 0] * 10).round().long(), 10).float()

    images = torch.tensor([[7, 2, 9], [0, 0, 1]]).float().div(10).view(2, 3, 1, 1).expand(-1, -1, 28, 28)
    assert modes.mode_labels(Reads(), images).tolist() == [729, 1]


def test_stacked_images_are_three_training_digits(images, digits):
    assert images.shape == (3, 28, 28) and len(images) == len(digits) == 4000 and images.heldout.shape == (1000, 3, 28, 28)
    for split, source in ((images.train, digits.train), (images.epoch_images(3, 7), digits.train),
                          (images.heldout, digits.heldout)):
        flat = source.flatten(1)
        for c in range(3):  # every channel of every image is one of the split's digits
            match = torch.cdist(split[:200, c].flatten(1), flat, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
            assert match.max() == 0
    index = stacked.triples(4000, 4000, torch.Generator().manual_seed(0))
    assert all(torch.equal(index[:, c].sort().values, torch.arange(4000)) for c in range(3))  # each digit once per channel


def test_each_epoch_draws_new_triples_from_seed_and_epoch(images):
    first = images.epoch_images(0, 0)
    assert torch.equal(first, data.load("stacked-mnist5k").epoch_images(0, 0))  # a pure function of (seed, epoch)
    for other in (images.epoch_images(0, 1), images.epoch_images(1, 0), images.train):
        assert (first != other).flatten(1).any(1).float().mean() > 0.99
    again = data.load("stacked-mnist5k")
    assert torch.equal(again.heldout, images.heldout) and torch.equal(again.train, images.train)


def test_batches_resume_exactly_across_epochs(images):
    batch = 1000  # 4 steps per epoch: steps 0-9 cross two epoch boundaries
    whole = data.batches(images, 0, batch, 5, torch.device("cpu"))
    steps = [next(whole) for _ in range(10)]
    resumed = data.batches(images, 6, batch, 5, torch.device("cpu"))
    assert all(torch.equal(next(resumed), steps[t]) for t in range(6, 10))
    assert torch.equal(steps[0], images.epoch_images(5, 0)[data.epoch_order(4000, 5, 0)[:batch]])
    assert torch.equal(steps[4], images.epoch_images(5, 1)[data.epoch_order(4000, 5, 1)[:batch]])


def test_pixel_std_and_gamma_are_the_digits(images, digits):
    assert data.pixel_std(images) == pytest.approx(data.pixel_std(digits), rel=1e-6)  # the same pixels, restacked
    assert evaluate.metric_gamma(data.pixel_std(images)) == pytest.approx(0.00678, abs=1e-5)


def test_sample_grid_is_in_colour(images, tmp_path):
    from PIL import Image

    plots.grid(images.heldout[:16], tmp_path / "stacked.png", nrow=4)
    picture = np.asarray(Image.open(tmp_path / "stacked.png").convert("RGB")).astype(int)
    assert picture.shape == (4 * 30 + 2, 4 * 30 + 2, 3)
    assert (np.abs(picture[..., 0] - picture[..., 1]) > 100).mean() > 0.05  # red and green differ: not grey


def test_modes_needs_a_stacked_run(root, tmp_path, capsys):
    run = tmp_path / "ae"
    train.main(["--data-root", str(root), "--out", str(run), "--objective", "ae", "--epochs", "1", "--batch-size", "400",
                "--stage-end-fid", "0", "--no-progress", "--device", "cpu", "--threads", "1"])
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(run), "--modes", "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "--modes needs a run on stacked data" in err


def test_every_stage_runs_on_stacked_data_and_scores_its_modes(root, tmp_path):
    common = ["--batch-size", "400", "--epochs", "1", "--stage-end-fid", "300", "--no-progress", "--device", "cpu",
              "--threads", "1"]
    ae = tmp_path / "cw2"
    train.main(["--data", "stacked-mnist5k", "--data-root", str(root), "--out", str(ae)] + common)
    latent.main(["--ae", str(ae)] + common)
    generator.main(["--data", "stacked-mnist5k", "--data-root", str(root), "--out", str(tmp_path / "cwg"),
                    "--steps", "5", "--batch-size", "400", "--stage-end-fid", "300", "--no-progress", "--device", "cpu",
                    "--threads", "1"])
    for run, noise in ((ae, 24), (ae / "latent", 24), (tmp_path / "cwg", 24)):
        config, records = Run(run).config(), Run(run).metrics()
        assert config.get("latent", config.get("noise")) == noise
        fid = [r for r in records if "fid_domain" in r]
        scored = [r for r in records if r.get("evaluation") == "modes"]
        assert len(fid) == 1 and "3 channels concatenated" in fid[0]["features"] and fid[0]["generated"] == 300
        assert len(scored) == 1 and scored[0]["generated"] == 300 and 1 <= scored[0]["modes"] <= 300
        assert records[-1]["step"] == scored[0]["step"]
    assert Run(ae).config()["shape"] == [3, 28, 28]


def test_modes_study_smoke_writes_its_table_and_reuses_finished_cells(root, tmp_path, monkeypatch, capsys):
    """One seed, a few steps: the study's files, and a second call with --reuse trains nothing."""
    from training import modes_study

    tiny = ["--models", "lcw", "cwg", "--seeds", "0", "--epochs", "1", "--latent-epochs", "1", "--generator-steps", "3",
            "--n", "200", "--modes-n", "500", "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    monkeypatch.chdir(tmp_path)  # the runs' data root "data" is here: give it the module's classifier
    (tmp_path / "data").symlink_to(root, target_is_directory=True)
    modes_study.main(tiny)
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert [(r["key"], r["seed"], r["reused"]) for r in results["rows"]] == [("lcw", 0, False), ("cwg", 0, False)]
    assert all(1 <= r["modes"] <= 500 and r["fid_domain"] > 0 for r in results["rows"])
    assert {p.name for p in (tmp_path / "results").iterdir()} == {"table.md", "results.json", "lcw.png", "cwg.png"}
    table = (tmp_path / "results" / "table.md").read_text()
    assert "| LCW (CW²+LT) | 1 |" in table and "| CW-Generator | 1 |" in table and "--modes-n 500" in table
    assert (f"python -m training.modes_study --models cwg --seeds 0 --n 200 --modes-n 500 --epochs 1 --latent-epochs 1 "
            f"--generator-steps 3 --out {tmp_path / 'runs'} --results {tmp_path / 'results'}/cwg") in table
    capsys.readouterr()
    modes_study.main(tiny + ["--reuse"])
    assert "training into" not in capsys.readouterr().out
    assert all(r["reused"] for r in json.loads((tmp_path / "results" / "results.json").read_text())["rows"])
