"""The one training loop, shared by stage 1 (autoencoder) and stage 2 (latent generator).

Every step t draws its batch and its random numbers from (seed, t) alone, and checkpoints hold the
models, the optimiser and the step, so `resume=True` continues exactly where an uninterrupted run
would be. A non-finite loss stops the run before anything is written (the last checkpoint stays good).

Chunked steps (chunk_size C, for batches larger than the activations of the networks allow): pass 1
runs the networks over the batch in chunks of C without autograd and keeps only their outputs (stage
1: x_hat and z; stage 2: LG(z')); the loss is computed over the whole batch from those outputs,
together with its gradients with respect to them; pass 2 re-runs each chunk with autograd, the
random-number state restored to that chunk's in pass 1, and backpropagates the chunk's rows of those
gradients. Activations then take memory O(C), the outputs and their gradients O(B * (D_x + D_z)).
For networks without BatchNorm the step equals the unchunked step (up to float rounding). With
BatchNorm it is the step of a network whose BatchNorm normalises each chunk of C rows by that
chunk's statistics ("ghost batch norm" of size C); the running statistics are updated once per
chunk, in pass 2 only.

Several processes (torchrun, training.world): each holds its rows of the global batch, the loss is
computed over the global batch (lcw_fast.distributed), the parameter gradients are summed over the
ranks, and rank 0's buffers (BatchNorm running statistics) are sent to all after each step; rank 0
alone writes. Chunking applies to each rank's rows.
"""
import contextlib
import sys
import time
from dataclasses import dataclass, fields
from typing import Callable, Dict, Iterator, Optional, Tuple

import torch
from torch import nn
from tqdm import tqdm

from .errors import ConfigError, NonFiniteLoss, RankFailed
from .runs import Run
from .world import World, lost_peer

Tensors = Tuple[torch.Tensor, ...]


@dataclass
class Stage:
    """What `fit` trains.

    models: everything the checkpoints hold, by name; trainable: the module Adam optimises;
    inputs(batch, rng) -> the network inputs of the step's rows, each (rows, ...) (rng: a torch.Generator
        seeded per step, the same on every rank);
    forward(*inputs) -> the network outputs the loss needs, each (rows, ...), for any subset of rows;
    loss(batch, outputs) -> 0-dim loss of the step from the batch and the outputs of all its rows;
    validate() -> dict of held-out metrics, "val_loss" first (called without grad, models in eval mode).
    """
    models: Dict[str, nn.Module]
    trainable: nn.Module
    inputs: Callable[[torch.Tensor, torch.Generator], Tensors]
    forward: Callable[..., Tensors]
    loss: Callable[[torch.Tensor, Tensors], torch.Tensor]
    validate: Callable[[], Dict[str, float]]


@dataclass
class LoopConfig:
    steps: int
    lr: float
    seed: int = 0
    eval_every: int = 100     # steps between validations (and `best` checkpoints)
    ckpt_every: int = 100     # steps between `last` checkpoints
    log_every: int = 10       # steps between training-loss records in metrics.jsonl
    amp: bool = False         # bf16 autocast (CUDA only)
    progress: bool = True     # tqdm bar
    chunk_size: Optional[int] = None  # rows per network pass (None: the whole batch at once)
    sync_bn: bool = False     # torchrun on CUDA: BatchNorm statistics over all ranks (torch's SyncBatchNorm)

    @classmethod
    def of(cls, options, steps: int) -> "LoopConfig":
        """The loop settings of a stage's config (its RunOptions flags, lr and seed) for `steps` steps."""
        return cls(steps=steps, **{f.name: getattr(options, f.name) for f in fields(cls) if f.name != "steps"})


def _batch_norms(module: nn.Module) -> list:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def batch_norm_rows(module: nn.Module, rank_batch: int, chunk_size: Optional[int], world_size: int,
                    sync_bn: bool) -> Optional[int]:
    """The rows each BatchNorm layer of `module` normalises over in a training step (None: it has none):
    one chunk of a rank's rows, times the ranks when they are synchronised (config.json records it)."""
    if not _batch_norms(module):
        return None
    rows = min(chunk_size or rank_batch, rank_batch)
    return rows * world_size if sync_bn else rows


def sync_batch_norm(stage: Stage, world: World) -> None:
    """Makes the trainable module's BatchNorm layers normalise over the rows of every rank (torch's
    SyncBatchNorm, which needs CUDA and NCCL; refused elsewhere in one line)."""
    if world.size == 1:
        return
    if world.device.type != "cuda":
        raise ConfigError("--sync-bn needs CUDA (torch.nn.SyncBatchNorm runs on NCCL); on the CPU (gloo) each rank's "
                          "BatchNorm normalises its own rows: run without --sync-bn")
    nn.SyncBatchNorm.convert_sync_batchnorm(stage.trainable, process_group=world.group)


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step + 1)


def _rng_state():
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None


def _set_rng_state(state) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def _running_stats_frozen(module: nn.Module):
    """BatchNorm layers in training mode normalise with the batch's statistics but leave their running
    statistics (and counters) alone."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


def _chunked_backward(stage: Stage, batch: torch.Tensor, inputs: Tensors, size: int, autocast) -> torch.Tensor:
    """The two passes of a chunked step (see the module docstring); returns the loss."""
    chunks = list(zip(*(t.split(size) for t in inputs)))
    states, cached = [], []
    with torch.no_grad(), _running_stats_frozen(stage.trainable):
        for chunk in chunks:
            states.append(_rng_state())
            with autocast:
                cached.append(stage.forward(*chunk))
    outputs = tuple(torch.cat(parts).requires_grad_() for parts in zip(*cached))
    del cached
    with autocast:
        loss = stage.loss(batch, outputs)
    grads = [g.split(size) if g is not None else None
             for g in torch.autograd.grad(loss, outputs, allow_unused=True)]
    del outputs
    for i, (chunk, state) in enumerate(zip(chunks, states)):
        _set_rng_state(state)
        with autocast:
            out = stage.forward(*chunk)
        used = [(o, g[i]) for o, g in zip(out, grads) if g is not None]
        torch.autograd.backward([o for o, _ in used], [g for _, g in used])
    return loss


def train_step(stage: Stage, batch: torch.Tensor, rng: torch.Generator, chunk_size: Optional[int] = None,
               autocast=None, world: Optional[World] = None) -> torch.Tensor:
    """Forward and backward of one step on this rank's `batch`: leaves the gradient of the (global)
    loss in the trainable parameters' .grad (summed over the ranks of `world`); returns the loss,
    detached. chunk_size: rows per network pass (None or >= len(batch): one pass)."""
    autocast = autocast or contextlib.nullcontext()
    inputs = stage.inputs(batch, rng)
    if chunk_size is None or chunk_size >= len(batch):
        with autocast:
            loss = stage.loss(batch, stage.forward(*inputs))
        loss.backward()
    else:
        loss = _chunked_backward(stage, batch, inputs, chunk_size, autocast)
    if world is not None:
        world.sum_gradients(stage.trainable)
    return loss.detach()


def _set_mode(stage: Stage, training: bool) -> None:
    for model in stage.models.values():
        model.eval()
    stage.trainable.train(training)


def _evaluate(stage: Stage, step: int) -> dict:
    _set_mode(stage, False)
    with torch.no_grad():
        record = {"step": step, **{k: float(v) for k, v in stage.validate().items()}}
    _set_mode(stage, True)
    return record


def fit(stage: Stage, batches: Callable[[int], Iterator[torch.Tensor]], cfg: LoopConfig, run: Run,
        world: World, resume: bool = False) -> dict:
    """Trains `stage` for cfg.steps steps on batches(start_step) (this rank's rows of each global batch);
    returns the last validation record. With `resume`, continues from run's last.pt if there is one
    (a run stopped before its first checkpoint starts over)."""
    if cfg.sync_bn:
        sync_batch_norm(stage, world)
    optimizer = torch.optim.Adam(stage.trainable.parameters(), lr=cfg.lr)
    step, best = 0, float("inf")
    if resume and run.has("last"):
        state = run.load("last", world.device)
        for name, model in stage.models.items():
            model.load_state_dict(state["models"][name])
        optimizer.load_state_dict(state["optimizer"])
        step, best = state["step"], state["best_val"]
    elif resume and world.writer:
        print(f"{run.path} has no checkpoint yet (the run stopped before its first one): starting from step 0",
              file=sys.stderr)
    if resume and world.writer:
        run.truncate_metrics(step)

    def checkpoint(name: str) -> None:
        if world.writer:
            run.save(name, {"step": step, "best_val": best, "optimizer": optimizer.state_dict(),
                            "models": {k: m.state_dict() for k, m in stage.models.items()}})

    def log(record: dict) -> None:
        if world.writer:
            run.log(record)

    _set_mode(stage, True)
    autocast = torch.autocast(world.device.type, torch.bfloat16, enabled=cfg.amp and world.device.type == "cuda")
    data = batches(step)
    bar = tqdm(total=cfg.steps, initial=step, disable=not (cfg.progress and world.writer), dynamic_ncols=True,
               leave=False)
    record = {}
    try:
        while step < cfg.steps:
            start = time.perf_counter()
            x = next(data)
            optimizer.zero_grad(set_to_none=True)
            loss = train_step(stage, x, step_generator(cfg.seed, step), cfg.chunk_size, autocast, world)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"the loss is {loss.item()} at step {step}; training stopped. The last good "
                                    f"checkpoint is {run.path / 'last.pt'} (--resume continues from it); "
                                    "try a lower --lr.")
            optimizer.step()
            world.share_buffers(stage.trainable)
            step += 1
            speed = len(x) * world.size / (time.perf_counter() - start)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4g}", img_s=f"{speed:.0f}", refresh=False)
            if step % cfg.log_every == 0:
                log({"step": step, "loss": loss.item(), "images_per_s": speed})
            if step % cfg.eval_every == 0 or step == cfg.steps:
                record = _evaluate(stage, step)
                log(record)
                if record["val_loss"] < best:
                    best = record["val_loss"]
                    checkpoint("best")
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                checkpoint("last")
    except RuntimeError as error:
        if world.size == 1 or not lost_peer(error):
            raise
        why = str(error) if isinstance(error, RankFailed) else (
            f"another process of the job died or stopped answering ({str(error).splitlines()[0][:160]})")
        raise RankFailed(f"rank {world.rank} stopped at step {step}: {why}. The last checkpoint "
                         f"{run.path / 'last.pt'} is intact; --resume continues from it") from None
    finally:
        bar.close()
    _set_mode(stage, False)
    return record or _evaluate(stage, step)
