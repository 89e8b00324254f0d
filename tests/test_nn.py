"""lcw_fast.nn: the loss modules agree with the public functions, `reduction` acts over a leading
batch of samples only, bad options are named, and a model with its losses compiles.

torch.compile runs with backend="aot_eager" (Dynamo capture + AOT autograd through the custom ops'
fake kernels and autograd): that is what decides whether the model and loss compile as one graph.
Inductor's C++ code generation around the sums is covered once in test_ops_cpu.py; here it would
add ~30 s of C++ builds on 2 cores to every model.
"""
import pytest
import torch

import lcw_fast
from lcw_fast import backends
from lcw_fast.nn import CWDistance, CWNormality
from helpers import assert_close

CPU_BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(name not in backends.available("cpu"),
                                                            reason=f"backend {name!r} is not available"))
                for name in ("cpu", "reference")]
GAMMA = 0.5


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_one_sample_gives_the_public_functions_value_whatever_the_reduction(backend, reduction):
    x = torch.randn(40, 6, dtype=torch.float64)
    y = 0.5 + torch.randn(30, 6, dtype=torch.float64)
    for gamma in (GAMMA, "silverman"):
        got = CWDistance(gamma, backend=backend, reduction=reduction)(x, y)
        assert got.shape == () and got.dtype == torch.float64
        assert got.item() == lcw_fast.cw_distance(x, y, gamma, backend=backend).item()
    for gamma in (GAMMA, None):
        got = CWNormality(gamma, backend=backend, reduction=reduction)(x)
        assert got.shape == ()
        assert got.item() == lcw_fast.cw_normality(x, gamma, backend=backend).item()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_batch_of_samples_is_reduced_over_its_leading_dimension(backend):
    """(B, n, D) inputs: each sample pair has its own value (and its own Silverman bandwidth)."""
    x = torch.randn(3, 25, 5)
    y = torch.randn(3, 20, 5) * torch.tensor([1.0, 2.0, 0.5]).view(3, 1, 1)
    for gamma in (GAMMA, "silverman"):
        each = torch.stack([lcw_fast.cw_distance(a, b, gamma, backend=backend) for a, b in zip(x, y)])
        values = CWDistance(gamma, backend=backend, reduction="none")(x, y)
        assert values.shape == (3,) and torch.equal(values, each)
        assert torch.equal(CWDistance(gamma, backend=backend, reduction="mean")(x, y), each.mean())
        assert torch.equal(CWDistance(gamma, backend=backend, reduction="sum")(x, y), each.sum())
    each = torch.stack([lcw_fast.cw_normality(z, backend=backend) for z in y])
    assert torch.equal(CWNormality(backend=backend, reduction="none")(y), each)
    assert torch.equal(CWNormality(backend=backend)(y), each.mean())
    assert torch.equal(CWNormality(backend=backend, reduction="sum")(y), each.sum())


def test_batch_mean_gradient_is_the_mean_of_the_per_sample_gradients():
    x = torch.randn(2, 30, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 20, 4, dtype=torch.float64)
    (got,) = torch.autograd.grad(CWDistance(GAMMA)(x, y) + CWNormality()(x), x)
    for i in range(2):
        value = lcw_fast.cw_distance(x[i], y[i], GAMMA) + lcw_fast.cw_normality(x[i])
        (expected,) = torch.autograd.grad(value / 2, x)
        assert_close(got[i], expected[i], rtol=1e-12, atol=1e-15, name=f"grad of sample {i}")


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: CWDistance(reduction="avg"), ValueError, r"reduction must be one of \('none', 'mean', 'sum'\)"),
        (lambda: CWNormality(reduction=None), ValueError, "reduction must be one of"),
        (lambda: CWDistance(backend="numpy"), ValueError, "backend must be one of"),
        (lambda: CWNormality(precision="tf32"), ValueError, "precision must be one of"),
        (lambda: CWDistance(gamma="scott"), TypeError, "gamma must be"),
        (lambda: CWDistance(gamma=-1.0), ValueError, "gamma must be positive"),
        (lambda: CWNormality(gamma="silverman"), TypeError, "gamma must be"),
        (lambda: CWNormality(gamma=0.0), ValueError, "gamma must be positive"),
    ],
)
def test_bad_options_are_named_at_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: CWDistance()(torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)), r"x must be a sample \(n, D\) or a batch"),
        (lambda: CWDistance()(torch.randn(3, 4), torch.randn(5)), r"y must be a sample \(n, D\) or a batch"),
        (lambda: CWDistance()(torch.randn(3, 4), torch.randn(2, 3, 4)), "x and y must both be samples"),
        (lambda: CWDistance()(torch.randn(2, 3, 4), torch.randn(3, 3, 4)), "same number B of samples"),
        (lambda: CWDistance()(torch.randn(0, 3, 4), torch.randn(0, 3, 4)), "x must hold at least one sample"),
        (lambda: CWNormality()(torch.randn(0, 3, 4)), "z must hold at least one sample"),
        (lambda: CWNormality()(torch.randn(2, 3, 1)), "D >= 2"),
    ],
)
def test_bad_inputs_are_named_in_the_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


class _AutoEncoderWithLoss(torch.nn.Module):
    """A CWAE-style model and its loss in one module: reconstruction + CW normality of the latent
    + CW distance between reconstructions and data."""

    def __init__(self, gamma):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        self.decoder = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 12))
        self.normality = CWNormality(backend="cpu")
        self.distance = CWDistance(gamma, backend="cpu")

    def forward(self, x):
        z = self.encoder(x)
        out = self.decoder(z)
        return (out - x).square().sum(1).mean() + torch.log(self.normality(z)) + self.distance(out, x)


@pytest.mark.skipif("cpu" not in backends.available("cpu"), reason="the C++ extension is not built")
@pytest.mark.parametrize("gamma, fullgraph", [(GAMMA, True), ("silverman", False)],
                         ids=["fixed-gamma-fullgraph", "silverman-graph-break"])
def test_torch_compile_of_model_and_loss_matches_eager(gamma, fullgraph):
    """A fixed gamma compiles as one graph; gamma="silverman" reads the std back (.item()): one graph
    break per sample, so it compiles without fullgraph, to the same values."""
    torch._dynamo.reset()
    model = _AutoEncoderWithLoss(gamma)
    x = torch.randn(64, 12)
    compiled = torch.compile(model, fullgraph=fullgraph, backend="aot_eager")
    for step in range(2):  # the second call runs the cached graph
        batch = x + step
        got = compiled(batch)
        got_grads = torch.autograd.grad(got, list(model.parameters()))
        expected = model(batch)
        expected_grads = torch.autograd.grad(expected, list(model.parameters()))
        assert got.item() == pytest.approx(expected.item(), rel=1e-6)
        for (name, _), g, e in zip(model.named_parameters(), got_grads, expected_grads):
            assert_close(g, e, rtol=1e-5, atol=1e-6, name=f"compiled grad of {name} (step {step})")
