"""benchmarks.batch_memory on the CPU with tiny, narrow networks: every path's points in fresh
subprocesses, the CSV/JSON/PNG, a budget that ends a path's sweep, and measure_step in-process."""
import csv
import json

import torch

from benchmarks import batch_memory

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--device", "cpu", "--threads", "1", "--width", "0.0625", "--latent", "8", "--chunk-size", "2", "--warmup", "0"]


def test_tiny_sweep_writes_csv_json_png_and_respects_the_budget(tmp_path):
    batch_memory.main(TINY + ["--batches", "4", "2", "--modes", "chunked", "--out", str(tmp_path)])
    with (tmp_path / "batch_memory.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["mode"], int(r["batch_size"]), r["status"]) for r in rows] == [("chunked", 2, "ok"), ("chunked", 4, "ok")]
    assert all(int(r["peak_bytes"]) > int(r["extra_bytes"]) > 0 and float(r["images_per_s"]) > 0 for r in rows)
    saved = json.loads((tmp_path / "batch_memory.json").read_text())
    assert saved["largest_batch"] == {"chunked": 4} and saved["machine"].endswith("(CPU, 1 thread)")
    assert (tmp_path / "batch_memory.png").read_bytes()[:8] == PNG_MAGIC

    batch_memory.main(TINY + ["--batches", "2", "4", "--modes", "fused", "--budget-gb", "0.01",
                              "--out", str(tmp_path / "small")])
    saved = json.loads((tmp_path / "small" / "batch_memory.json").read_text())
    assert [r["status"] for r in saved["rows"]] == ["over budget"] and saved["largest_batch"] == {"fused": None}


def test_measure_step_paths_agree_on_the_loss():
    """The paper's reference loss and the fused one agree; the chunked step (chunk 2 of 4) differs, as the
    CelebA networks' BatchNorm then normalises each chunk (ghost batch norm), unless one chunk holds the batch."""
    loss = lambda mode, chunk: batch_memory.measure_step(mode, 4, chunk, torch.device("cpu"), width=0.0625, latent=8,
                                                         warmup=0)["loss"]
    fused = loss("fused", 2)
    assert abs(loss("paper", 2) - fused) < 1e-4 and loss("chunked", 4) == fused
    assert abs(loss("chunked", 2) - fused) > 1e-4
