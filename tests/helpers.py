"""assert_close: one comparison helper for every test, reporting max and RMS error."""
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
