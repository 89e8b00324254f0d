"""Chunked training steps (training.loop, --chunk-size): without BatchNorm they equal the unchunked
step (per-step losses, gradients and parameters over 20 Adam steps); with BatchNorm they equal an
explicit ghost-batch-norm reference, running statistics included; every objective, the Silverman
bandwidth, bf16 autocast and an uneven last chunk.

The 20-step comparisons train float64 networks (the losses stay float32): in float32 a chunked
step differs from the unchunked one by rounding only (the weight gradients are summed over chunks
instead of over the batch; ~1e-7 relative, checked directly below), but Adam amplifies that over
20 steps to 4e-5 in the per-step losses, which would hide nothing and prove nothing. In float64 the
two runs agree to ~1e-15."""
import pytest
import torch
from torch import nn

from helpers import assert_close, train_steps
from training import data, loop, models, train
from training.objectives import latent_trick_loss

STEPS = 20


pytestmark = pytest.mark.usefixtures("one_thread")


def _compare(chunked, whole, grad_rtol=1e-4):
    (losses, grads, state), (ref_losses, ref_grads, ref_state) = chunked, whole
    assert_close(losses, ref_losses, rtol=1e-5, name="per-step losses")
    for step, (g, ref) in enumerate(zip(grads, ref_grads)):
        assert_close(g, ref, rtol=grad_rtol, atol=1e-6 * ref.abs().max().item(), rel_l2=1e-5, name=f"gradient {step}")
    for name, ref in ref_state.items():
        assert_close(state[name], ref, atol=1e-5, rtol=1e-5, name=name)


@pytest.fixture(scope="module")
def mnist_batches():
    images = data.load("mnist5k")
    return [images.train[data.epoch_order(len(images), 0, 0)[:1024]]] + [
        images.train[data.epoch_order(len(images), 0, step)[:1024]] for step in range(1, STEPS)]


def _autoencoder_stage(objective, gamma=0.0117):
    torch.manual_seed(0)
    model = models.Autoencoder((1, 28, 28), 8, batch_norm=False)  # BatchNorm: the stage-2 ghost-BN tests
    return train.autoencoder_stage(model, objective, 0.1, gamma)


def test_stage1_cw2_batch_1024_chunk_128_equals_unchunked(mnist_batches):
    _compare(train_steps(_autoencoder_stage("cw2"), mnist_batches, 128),
             train_steps(_autoencoder_stage("cw2"), mnist_batches, None))


def test_float32_chunked_gradient_equals_unchunked(mnist_batches):
    one = [mnist_batches[0]]
    chunked, whole = (train_steps(_autoencoder_stage("cw2"), one, c, steps=1, dtype=torch.float32) for c in (128, None))
    assert_close(chunked[0], whole[0], rtol=1e-6, name="float32 loss")
    assert_close(chunked[1][0], whole[1][0], atol=float("inf"), rel_l2=1e-5, name="float32 gradient")


@pytest.mark.parametrize("objective,gamma", [("ae", 0.0117), ("cwae", 0.0117), ("cw2", "silverman")])
def test_stage1_objectives_chunked_equal_unchunked(mnist_batches, objective, gamma):
    batches = [b[:300] for b in mnist_batches]  # chunks 128, 128, 44
    chunked = train_steps(_autoencoder_stage(objective, gamma), batches, 128, steps=3)
    _compare(chunked, train_steps(_autoencoder_stage(objective, gamma), batches, None, steps=3))


class _GhostBatchNorm(nn.Module):
    """The reference: `net` applied to consecutive chunks of `size` rows, with autograd over the whole batch."""

    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        self.net, self.size = net, size

    def forward(self, z):
        return torch.cat([self.net(chunk) for chunk in z.split(self.size)])


def _latent_stage(batch_norm: bool, gamma, ghost: int = 0):
    torch.manual_seed(0)
    lg = models.LatentGenerator(noise=8, latent=8, width=64, layers=3)
    if not batch_norm:
        lg.net = nn.Sequential(*[nn.Identity() if isinstance(m, nn.BatchNorm1d) else m for m in lg.net])
    net = _GhostBatchNorm(lg.net, ghost) if ghost else lg.net
    return loop.Stage({"lg": lg}, lg, inputs=lambda s, rng: (torch.randn(len(s), 8, generator=rng, dtype=s.dtype),),
                      forward=lambda z: (net(z),), loss=lambda s, out: latent_trick_loss(out[0], s, gamma),
                      validate=dict)


@pytest.fixture(scope="module")
def latent_batches():
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(1024, 8, generator=gen) * 0.8 + 0.1 for _ in range(STEPS)]


@pytest.mark.parametrize("gamma", [0.3, "silverman"])
def test_stage2_without_batch_norm_chunked_equals_unchunked(latent_batches, gamma):
    _compare(train_steps(_latent_stage(False, gamma), latent_batches, 128, lr=1e-3),
             train_steps(_latent_stage(False, gamma), latent_batches, None, lr=1e-3))


@pytest.mark.parametrize("size", [128, 300])  # 300: chunks of 300, 300, 300, 124
def test_stage2_batch_norm_chunked_equals_ghost_batch_norm(latent_batches, size):
    chunked, ghost = _latent_stage(True, 0.3), _latent_stage(True, 0.3, ghost=size)
    _compare(train_steps(chunked, latent_batches, size, lr=1e-3), train_steps(ghost, latent_batches, None, lr=1e-3))
    norms = [m for m in chunked.trainable.net if isinstance(m, nn.BatchNorm1d)]
    assert int(norms[0].num_batches_tracked) == STEPS * -(-1024 // size)  # once per chunk, pass 2 only


def test_chunked_step_under_bf16_autocast(latent_batches):
    grads = []
    for chunk in (128, None):
        stage = _latent_stage(False, 0.3)
        loop.train_step(stage, latent_batches[0], loop.step_generator(0, 0), chunk,
                        torch.autocast("cpu", torch.bfloat16))
        grads.append(torch.cat([p.grad.flatten() for p in stage.trainable.parameters()]))
    assert_close(grads[0], grads[1], atol=float("inf"), rel_l2=1e-2, name="bf16 gradient")
