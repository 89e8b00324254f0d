"""Property-based tests (hypothesis) of the public functions on every backend that runs on CPU
tensors here: "cpu", "reference", and "triton" under its CPU interpreter (TRITON_INTERPRET=1, which
conftest.py sets where no GPU is visible).

Drawn: n, m in 1..40 points, D in 2..20, float32 or float64, the samples' spreads and offset, and
gamma log-uniform in [1e-4, 1e4]; the data come from a torch generator seeded by a drawn integer.
Properties: cw_distance(x, x) = 0, symmetry in x and y, invariance to a common translation and to a
common orthogonal rotation, non-negativity (the kernel is positive definite and the means include
the diagonal, so the distance is a squared norm), and agreement of cw_distance, cw_normality and
kernel_sum with the blocked float64 reference.

Tolerances, in units of the term scale (lcw_fast.reference.cw_distance_scale: C0 times the sum of
the magnitudes of the three mean terms; cw_normality_scale likewise; a kernel sum is its own scale):
float64 1e-10. float32 1e-5, plus the rounding of the squared distances themselves: a float32
distance |a|^2 + |b|^2 - 2 a.b may be off by D eps32 (|a|^2 + |b|^2) (Higham's dot-product bound),
which moves k(d) by k(d)^3 / (2c) times that. The term matters only where c gamma is small against
|a|^2 eps32 D, i.e. at tiny gamma; |a| is taken about the samples' common mean on the fused
backends (they centre their inputs) and about 0 on the reference backend (it does not), so the
reference's float32 translation error is allowed to grow with the translation.

Settings: derandomize=True and database=None, so a CI run draws the same examples every time and
writes nothing; deadline=None since the Triton interpreter's first call compiles. The Triton
interpreter takes ~25 ms a call, so it draws fewer examples than the compiled backends.
"""
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lcw_fast
from lcw_fast import backends, reference

EXAMPLES = {"cpu": 40, "reference": 40, "triton": 12}
BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(backends.TABLE[name].available_on("cpu") is not None,
                                                        reason=str(backends.TABLE[name].available_on("cpu"))))
            for name in EXAMPLES]
F64_TOL = 1e-10
F32_TOL = 1e-5
EPS32 = torch.finfo(torch.float32).eps


@dataclass
class Problem:
    x: torch.Tensor  # (n, D), in `dtype`
    y: torch.Tensor  # (m, D), in `dtype`
    gamma: float
    generator: torch.Generator  # seeded per example: translations and rotations

    @property
    def dtype(self):
        return self.x.dtype


@st.composite
def problems(draw):
    n, m, dim = draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.integers(2, 20))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    gamma = 10.0 ** draw(st.floats(-4.0, 4.0))
    spread_x, spread_y = draw(st.floats(0.1, 3.0)), draw(st.floats(0.1, 3.0))
    offset = draw(st.floats(-2.0, 2.0))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = spread_x * torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = offset + spread_y * torch.randn(m, dim, generator=g, dtype=torch.float64)
    return Problem(x.to(dtype), y.to(dtype), gamma, g)


def _run(backend, check):
    """Runs `check(problem)` on EXAMPLES[backend] drawn problems, reproducibly and database-free."""
    test = settings(max_examples=EXAMPLES[backend], deadline=None, derandomize=True, database=None)(
        given(problems())(check))
    test()


def _rounding(a, b, gamma, centre):
    """mean_ij k(d_ij)^3 / (2c) * D eps32 (|a_i|^2 + |b_j|^2): how far float32 rounding of the squared
    distances can move mean_ij k(d_ij) (norms about `centre`), in float64."""
    a, b = a.double() - centre, b.double() - centre
    dim = a.shape[1]
    c = 2 * dim - 3
    k = reference.kernel(reference.pairwise_sq_dists(a, b), gamma, dim)
    norms = a.square().sum(1)[:, None] + b.square().sum(1)[None, :]
    return (k.pow(3) / (2 * c) * dim * EPS32 * norms).mean().item()


def _centre(backend, *samples):
    if not backends.TABLE[backend].fused:
        return 0.0
    samples = [s.double() for s in samples]
    return sum(s.sum(0) for s in samples) / sum(s.shape[0] for s in samples)


def distance_tol(backend, x, y, gamma):
    """Allowed error of cw_distance(x, y) on `backend` (see the module docstring)."""
    scale = reference.cw_distance_scale(x, y, gamma)
    if x.dtype == torch.float64:
        return F64_TOL * scale
    centre = _centre(backend, x, y)
    terms = sum(_rounding(a, b, gamma, centre) * w for a, b, w in ((x, x, 1), (y, y, 1), (x, y, 2)))
    return F32_TOL * scale + reference.C0 * terms


def _distance(backend, x, y, gamma):
    return lcw_fast.cw_distance(x, y, gamma, backend=backend).item()


@pytest.mark.parametrize("backend", BACKENDS)
def test_distance_of_a_sample_to_itself_is_zero(backend):
    def check(p):
        got = _distance(backend, p.x, p.x, p.gamma)
        assert abs(got) <= distance_tol(backend, p.x, p.x, p.gamma), got

    _run(backend, check)


@pytest.mark.parametrize("backend", BACKENDS)
def test_distance_is_symmetric(backend):
    def check(p):
        xy, yx = _distance(backend, p.x, p.y, p.gamma), _distance(backend, p.y, p.x, p.gamma)
        assert abs(xy - yx) <= 2 * distance_tol(backend, p.x, p.y, p.gamma), (xy, yx)

    _run(backend, check)


def _invariant(backend, p, transform):
    """cw_distance of the transformed samples (transformed in float64, then rounded to p.dtype)."""
    x, y = (transform(s.double()).to(p.dtype) for s in (p.x, p.y))
    got, expected = _distance(backend, x, y, p.gamma), _distance(backend, p.x, p.y, p.gamma)
    tol = distance_tol(backend, x, y, p.gamma) + distance_tol(backend, p.x, p.y, p.gamma)
    assert abs(got - expected) <= tol, (got, expected, tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_distance_is_invariant_to_a_common_translation(backend):
    def check(p):
        shift = 10.0 * torch.randn(p.x.shape[1], generator=p.generator, dtype=torch.float64)
        _invariant(backend, p, lambda s: s + shift)

    _run(backend, check)


@pytest.mark.parametrize("backend", BACKENDS)
def test_distance_is_invariant_to_a_common_rotation(backend):
    def check(p):
        dim = p.x.shape[1]
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=p.generator, dtype=torch.float64))
        _invariant(backend, p, lambda s: s @ q)

    _run(backend, check)


@pytest.mark.parametrize("backend", BACKENDS)
def test_distance_is_non_negative_for_every_gamma(backend):
    def check(p):
        got = _distance(backend, p.x, p.y, p.gamma)
        assert got >= -distance_tol(backend, p.x, p.y, p.gamma), got

    _run(backend, check)


@pytest.mark.parametrize("backend", BACKENDS)
def test_public_functions_agree_with_the_float64_reference(backend):
    def check(p):
        x64, y64 = p.x.double(), p.y.double()
        got = lcw_fast.cw_distance(p.x, p.y, p.gamma, backend=backend)
        expected = reference.cw_distance_blocked(x64, y64, p.gamma)
        assert got.dtype == p.dtype
        assert abs(got.item() - expected.item()) <= distance_tol(backend, p.x, p.y, p.gamma), "cw_distance"

        got = lcw_fast.cw_normality(p.x, p.gamma, backend=backend)
        expected = reference.cw_normality_blocked(x64, p.gamma)
        tol = reference.cw_normality_scale(p.x, p.gamma)
        if p.dtype == torch.float32:
            tol = F32_TOL * tol + reference.C0 * _rounding(p.x, p.x, p.gamma, _centre(backend, p.x))
        else:
            tol = F64_TOL * tol
        assert abs(got.item() - expected.item()) <= tol, "cw_normality"

        got = lcw_fast.kernel_sum(p.x, p.y, gamma=p.gamma, backend=backend).item()
        expected = reference.kernel_sum_blocked(x64, y64, p.gamma).item()
        if p.dtype == torch.float32:
            pairs = p.x.shape[0] * p.y.shape[0]
            tol = F32_TOL * expected + pairs * _rounding(p.x, p.y, p.gamma, _centre(backend, p.x, p.y))
        else:
            tol = F64_TOL * expected
        assert abs(got - expected) <= tol, "kernel_sum"

    _run(backend, check)
