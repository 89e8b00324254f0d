"""Benchmark options: `pytest benchmarks/ --threads N` pins torch's intra-op thread count, `--rounds R`
sets the timed calls per case, `--bench-json FILE` writes the rows of the terminal summary (median,
min and max ms of each case and backend, from benchmarks.timing.measure)."""
import json
from pathlib import Path

import pytest
import torch

ROWS = []  # filled by the bench_rows fixture, printed and written at the end of the session


def pytest_addoption(parser):
    parser.addoption("--threads", type=int, default=None,
                     help="torch.set_num_threads for the benchmarks (default: torch's default)")
    parser.addoption("--rounds", type=int, default=3, help="timed calls per case and backend (after one warm-up)")
    parser.addoption("--bench-json", type=Path, default=None, help="write the timing rows to this JSON file")


@pytest.fixture(autouse=True)
def _threads(request):
    threads = request.config.getoption("--threads")
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def bench_rows():
    """The session's list of timing rows: a benchmark appends one dict per case and backend."""
    return ROWS


def pytest_terminal_summary(terminalreporter, config):
    if not ROWS:
        return
    terminalreporter.section("benchmarks: ms per call (median [min, max]), speed-up over reference")
    for r in ROWS:
        terminalreporter.write_line(f"{r['case']:42} {r['backend']:10} {r['median_ms']:10.2f} "
                                    f"[{r['min_ms']:.2f}, {r['max_ms']:.2f}]  {r['speedup_vs_reference']:.2f}x")
    path = config.getoption("--bench-json")
    if path:
        path.write_text(json.dumps(ROWS, indent=1) + "\n")
