"""lcw_fast.compat.gmum against an independent dense implementation of the LCW-generator authors'
conventions (src/metrics/cw.py of gmum/lcw-generator), written here from their formulas:

  cw_normality(X, y)    = (1+y)^(-1/2) + mean_ij (y + K d_ij)^(-1/2) - 2 mean_i (y + 1/2 + K |x_i|^2)^(-1/2),
                          K = 1 / (2D - 3), y = (4 / (3N))^0.4 by default; no factor 1/(2 sqrt(pi)).
  cw_sampling(a, b, y)  = T [mean phi(d_aa / 4y) + mean phi(d_bb / 4y) - 2 mean phi(d_ab / 4y)],
                          T = 1 / (2 sqrt(pi y)), phi(s) = (1 + 4s / (2D - 3))^(-1/2), samples flattened.
  cw_sampling_silverman = cw_sampling with y = (1.06 std(b) N_b^(-1/5))^2, std unbiased over b only.

float64 values and gradients agree to 1e-10 relative; a CWAE-style training step in float32 gives
the same losses to 1e-6 (here and in docs/examples/cwae_step_gmum.py, the before/after example); and
the memory of cw_sampling_silverman at n = m = 12,000 stays far below the three dense n x n float64
matrices (3.5 GB) the original builds.
"""
import math
import os
import subprocess
import sys

import pytest
import torch

import lcw_fast
from lcw_fast.compat import gmum
from helpers import HAS_PEAK_RESET, ROOT, assert_close, assert_peak_rss_growth_below

F64_RTOL = 1e-10


def _dense_sq_dists(a, b):
    """(n, D), (m, D) -> (n, m) squared distances from differences (no Gram cancellation)."""
    return (a[:, None, :] - b[None, :, :]).square().sum(-1)


def dense_cw_normality(X, y=None):
    n, dim = X.shape
    y = (4.0 / (3.0 * n)) ** 0.4 if y is None else float(y)
    k = 1.0 / (2.0 * dim - 3.0)
    pairs = (y + k * _dense_sq_dists(X, X)).rsqrt().mean()
    prior = 2.0 * (y + 0.5 + k * X.square().sum(1)).rsqrt().mean()
    return 1.0 / math.sqrt(1.0 + y) + pairs - prior


def dense_cw_sampling(a, b, y):
    a, b, y = a.flatten(1), b.flatten(1), float(y)
    dim = a.shape[1]

    def phi_mean(p, q):
        s = _dense_sq_dists(p, q) / (4.0 * y)
        return (1.0 + 4.0 * s / (2.0 * dim - 3.0)).rsqrt().mean()

    return (phi_mean(a, a) + phi_mean(b, b) - 2.0 * phi_mean(a, b)) / (2.0 * math.sqrt(math.pi * y))


def dense_silverman(b):
    return (1.06 * b.std().item() * b.shape[0] ** -0.2) ** 2


def _check_value_and_grad(got, expected, inputs, name):
    assert got.shape == () and got.dtype == expected.dtype
    assert got.item() == pytest.approx(expected.item(), rel=F64_RTOL), name
    for t, g, e in zip(inputs, torch.autograd.grad(got, inputs), torch.autograd.grad(expected, inputs)):
        assert_close(g, e, rtol=F64_RTOL, atol=F64_RTOL * e.abs().max().item(), name=f"grad of {name}")


@pytest.mark.parametrize("n, dim", [(1, 2), (37, 3), (200, 8), (90, 64)])
@pytest.mark.parametrize("y", [None, 0.3, "tensor"])
def test_cw_normality_matches_the_dense_form_without_c0(n, dim, y):
    z = (0.4 + 1.3 * torch.randn(n, dim, dtype=torch.float64)).requires_grad_()
    y = torch.tensor(0.05, dtype=torch.float64) if y == "tensor" else y
    _check_value_and_grad(gmum.cw_normality(z, y), dense_cw_normality(z, y), [z], "cw_normality")


@pytest.mark.parametrize("first, second", [((50, 1, 4, 4), (50, 1, 4, 4)), ((120, 10), (120, 10)),
                                           ((33, 7), (61, 7)), ((1, 3), (1, 3))])
@pytest.mark.parametrize("y", [0.02, "tensor"])
def test_cw_sampling_matches_the_dense_phi_form(first, second, y):
    a = torch.randn(*first, dtype=torch.float64, requires_grad=True)
    b = (0.3 + 1.5 * torch.randn(*second, dtype=torch.float64)).requires_grad_()
    y = torch.tensor(0.7, dtype=torch.float64) if y == "tensor" else y
    _check_value_and_grad(gmum.cw_sampling(a, b, y), dense_cw_sampling(a, b, y), [a, b], "cw_sampling")


@pytest.mark.parametrize("n, m, dim", [(64, 64, 5), (40, 90, 20)])
def test_cw_sampling_silverman_takes_the_bandwidth_from_the_second_sample_only(n, m, dim):
    a = (2.0 + 3.0 * torch.randn(n, dim, dtype=torch.float64)).requires_grad_()
    b = 0.5 * torch.randn(m, dim, dtype=torch.float64)
    expected = dense_cw_sampling(a, b, dense_silverman(b))
    _check_value_and_grad(gmum.cw_sampling_silverman(a, b), expected, [a], "cw_sampling_silverman")
    # lcw_fast's own "silverman" uses the std of both samples and N = (n + m) / 2: a different bandwidth
    ours = lcw_fast.cw_distance(a, b, "silverman")
    assert abs(ours.item() - expected.item()) > 1e-3 * expected.item()


def test_the_conventions_map_onto_the_public_api():
    """cw_normality is lcw_fast's without C0; cw_sampling(a, b, y) is lcw_fast.cw_distance(a, b, y)."""
    a = torch.randn(70, 6, dtype=torch.float64)
    b = 1.0 + torch.randn(70, 6, dtype=torch.float64)
    assert gmum.cw_normality(a).item() == pytest.approx(lcw_fast.cw_normality(a).item() / lcw_fast.C0, rel=1e-15)
    assert gmum.cw_sampling(a, b, 0.4).item() == lcw_fast.cw_distance(a, b, 0.4).item()


def test_silverman_rule_of_thumb_keeps_the_type_of_its_argument():
    std = torch.tensor(0.3081, dtype=torch.float32)
    got = gmum.silverman_rule_of_thumb(std, 256)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32 and got.shape == ()
    assert got.item() == pytest.approx(lcw_fast.silverman_gamma(0.3081, 256), rel=1e-6)
    assert gmum.silverman_rule_of_thumb(0.3081, 256) == pytest.approx(lcw_fast.silverman_gamma(0.3081, 256), rel=1e-15)


def test_bad_inputs_raise_named_errors():
    with pytest.raises(ValueError, match="z must be 2-D"):
        gmum.cw_normality(torch.randn(3, 4, 5))
    with pytest.raises(ValueError, match="same dimension D"):
        gmum.cw_sampling(torch.randn(5, 3), torch.randn(5, 4), 0.5)
    with pytest.raises(ValueError, match="gamma must be positive"):
        gmum.cw_sampling(torch.randn(5, 3), torch.randn(5, 3), 0.0)


def _cwae_losses(cw, steps=3):
    """Losses of `steps` SGD steps of the authors' 'cwae' cost, mean per-image squared error +
    log cw_normality(latent), and of their 'cw2_dynamic' cost, log cw_sampling_silverman(output, batch)
    + log cw_normality(latent), on a tiny float32 autoencoder, with the CW functions of module `cw`."""
    torch.manual_seed(1)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    decoder = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 64),
                                  torch.nn.Unflatten(1, (1, 8, 8)))
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.SGD(params, lr=1e-3)
    batch = torch.rand(128, 1, 8, 8)
    losses = []
    for _ in range(steps):
        latent = encoder(batch)
        output = decoder(latent)
        rec_err = (output - batch).square().flatten(1).sum(1).mean()
        cwae = rec_err + torch.log(cw.cw_normality(latent))
        cw2 = torch.log(cw.cw_sampling_silverman(output, batch)) + torch.log(cw.cw_normality(latent))
        optimizer.zero_grad()
        (cwae + cw2).backward()
        optimizer.step()
        losses.append((cwae.item(), cw2.item()))
    return losses


class _Dense:
    """The dense implementation above, with the module interface of metrics/cw.py."""

    cw_normality = staticmethod(dense_cw_normality)

    @staticmethod
    def cw_sampling_silverman(a, b):
        return dense_cw_sampling(a, b, (1.06 * b.std() * b.shape[0] ** -0.2) ** 2)


def test_a_cwae_training_step_in_float32_gives_the_dense_losses_to_1e_6():
    for step, (got, expected) in enumerate(zip(_cwae_losses(gmum), _cwae_losses(_Dense))):
        for name, g, e in zip(("cwae", "cw2_dynamic"), got, expected):
            assert g == pytest.approx(e, rel=1e-6, abs=1e-6), f"{name} loss at step {step}: {g} vs {e}"


MEMORY_N, MEMORY_D = 12_000, 8
DENSE_BYTES = 3 * MEMORY_N**2 * 8  # the original's three n x n float64 distance matrices: 3.46 GB
MEMORY_SETUP = f"""
import torch
from lcw_fast.compat import gmum

a = torch.randn({MEMORY_N}, {MEMORY_D}, dtype=torch.float64, requires_grad=True)
b = torch.randn({MEMORY_N}, {MEMORY_D}, dtype=torch.float64)
gmum.cw_sampling_silverman(a[:300], b[:300]).backward()  # warm up: thread pool, first allocations
a.grad = None
"""
MEMORY_MEASURED = """
value = gmum.cw_sampling_silverman(a, b)
value.backward()
assert torch.isfinite(value) and torch.isfinite(a.grad).all()
"""


@pytest.mark.skipif(not HAS_PEAK_RESET, reason="needs Linux /proc to reset the peak RSS")
def test_cw_sampling_silverman_at_12k_points_needs_a_tiny_fraction_of_the_dense_memory():
    assert DENSE_BYTES > 2**30
    print(f"the original's dense distance matrices: {DENSE_BYTES / 2**30:.2f} GiB")
    assert_peak_rss_growth_below(MEMORY_SETUP, MEMORY_MEASURED, 64 * 2**20)


def test_the_before_after_example_runs_and_agrees(tmp_path):
    """docs/examples/cwae_step_gmum.py, with this file's dense forms standing in for the authors'
    metrics/cw.py (their code is not vendored here): both runs, compared to its 1e-6 tolerance."""
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "cw.py").write_text(
        "from test_compat_gmum import _Dense\n"
        "cw_normality, cw_sampling_silverman = _Dense.cw_normality, _Dense.cw_sampling_silverman\n")
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, tests, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "docs", "examples", "cwae_step_gmum.py"),
                          "--gmum-src", str(tmp_path), "--steps", "2", "--batch-size", "32"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count(" gmum ") == 4 and "largest difference" in out.stdout, out.stdout
