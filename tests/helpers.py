"""assert_close: one comparison helper for every test, reporting the errors of lcw_fast.reference.errors;
peak_rss_growth / assert_peak_rss_growth_below: the peak-memory measurement of the memory tests;
train_steps: Adam steps of a training.loop Stage (the chunked-step tests)."""
import os
import subprocess
import sys
import textwrap

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


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PEAK_SCRIPT = """
def _status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

{setup}
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the current RSS
_before = _status_kib("VmHWM")
{measured}
print((_status_kib("VmHWM") - _before) * 1024)
"""
HAS_PEAK_RESET = os.path.exists("/proc/self/clear_refs")  # Linux: the peak RSS can be reset


def peak_rss_growth(setup: str, measured: str) -> int:
    """Bytes by which the code `measured` grows the peak resident set of a fresh Python process,
    after `setup` ran there (imports, inputs, warm-up), so that other tests' allocations never count."""
    script = _PEAK_SCRIPT.format(setup=textwrap.dedent(setup), measured=textwrap.dedent(measured))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


def assert_peak_rss_growth_below(setup: str, measured: str, limit: int) -> int:
    """peak_rss_growth(setup, measured), printed and asserted below `limit` bytes; returns it."""
    growth = peak_rss_growth(setup, measured)
    print(f"peak RSS growth: {growth / 2**20:.1f} MiB")
    assert growth < limit, f"peak RSS grew by {growth / 2**20:.1f} MiB (limit {limit / 2**20:.1f} MiB)"
    return growth


def train_steps(stage, batches, chunk_size, steps=None, lr=2e-3, dtype=torch.float64):
    """(per-step losses, per-step flat gradients, final state_dict) of Adam steps of a training.loop Stage
    on `batches` (one per step; steps: default all of them) with the networks in `dtype`."""
    from training import loop

    stage.trainable.to(dtype)
    batches = [b.to(dtype) for b in batches]
    optimizer = torch.optim.Adam(stage.trainable.parameters(), lr=lr)
    losses, grads = [], []
    stage.trainable.train()
    for step in range(len(batches) if steps is None else steps):
        optimizer.zero_grad(set_to_none=True)
        losses.append(loop.train_step(stage, batches[step], loop.step_generator(0, step), chunk_size))
        grads.append(torch.cat([p.grad.flatten() for p in stage.trainable.parameters()]))
        optimizer.step()
    return torch.stack(losses), grads, {k: v.clone() for k, v in stage.trainable.state_dict().items()}
