"""assert_close: one comparison helper for every test, reporting max and RMS error; the value scales
(from the bounded-memory float64 reference, so they fit at GPU sizes)."""
import torch


def errors(actual: torch.Tensor, expected: torch.Tensor):
    """Max absolute error, RMS error and relative L2 error of actual against expected (in float64)."""
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    diff = a - e
    max_err = diff.abs().max().item() if diff.numel() else 0.0
    rms = diff.square().mean().sqrt().item() if diff.numel() else 0.0
    rel_l2 = (diff.norm() / e.norm().clamp_min(1e-300)).item()
    return max_err, rms, rel_l2


def assert_close(actual, expected, *, atol=0.0, rtol=0.0, rel_l2=None, name="value"):
    """Elementwise |a - e| <= atol + rtol |e|, and optionally |a - e|_2 <= rel_l2 |e|_2."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    max_err, rms, rl2 = errors(a, e)
    report = f"{name}: max abs err {max_err:.3e}, RMS err {rms:.3e}, rel L2 err {rl2:.3e}"
    assert torch.isfinite(a).all() == torch.isfinite(e).all(), f"{name}: non-finite mismatch; {report}"
    ok = ((a - e).abs() <= atol + rtol * e.abs()).all().item()
    assert ok, f"{name} exceeds atol={atol:g}, rtol={rtol:g}; {report}"
    if rel_l2 is not None:
        assert rl2 <= rel_l2, f"{name} exceeds rel L2 {rel_l2:g}; {report}"


def cw_distance_scale(x: torch.Tensor, y: torch.Tensor, gamma: float) -> float:
    """C0 times the sum of the magnitudes of cw_distance's three mean terms (the unit of value errors)."""
    from lcw_fast import reference

    x, y = x.detach().double(), y.detach().double()
    means = [reference.kernel_sum_blocked(a, b, gamma) / (a.shape[0] * b.shape[0]) for a, b in ((x, x), (y, y), (x, y))]
    return reference.C0 * (means[0] + means[1] + 2 * means[2]).item()


def cw_normality_scale(z: torch.Tensor, gamma: float) -> float:
    """C0 times the sum of the magnitudes of cw_normality's three terms (the unit of value errors)."""
    from lcw_fast import reference

    z = z.detach().double()
    n, dim = z.shape
    prior = torch.rsqrt(gamma + 0.5 + z.square().sum(1) / (2 * dim - 3)).mean().item()
    pairs = reference.kernel_sum_blocked(z, z, gamma).item() / n**2
    return reference.C0 * (pairs + (1 + gamma) ** -0.5 + 2 * prior)
