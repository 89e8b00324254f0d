"""Benchmark options: `pytest benchmarks/ --threads N` pins torch's intra-op thread count."""
import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--threads", type=int, default=None,
                     help="torch.set_num_threads for the benchmarks (default: torch's default)")


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
