"""Test setup: Triton runs under its CPU interpreter where no GPU is visible; `gpu` tests skip there."""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the first `import triton`

HAS_GPU = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if HAS_GPU:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One CPU thread for the test (the small MLPs run fastest so), the count restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def keep_threads():
    """Restores PyTorch's thread count after a test whose runs set their own (--threads)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
