"""assert_close: one comparison helper for every test, reporting the errors of lcw_fast.reference.errors."""
import torch

from lcw_fast.reference import errors


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
