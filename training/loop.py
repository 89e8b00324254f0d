"""The one training loop, shared by stage 1 (autoencoder) and stage 2 (latent generator).

Every step t draws its batch and its random numbers from (seed, t) alone, and checkpoints hold the
models, the optimiser and the step, so `resume=True` continues exactly where an uninterrupted run
would be. A non-finite loss stops the run before anything is written (the last checkpoint stays good).
"""
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator

import torch
from torch import nn
from tqdm import tqdm

from .runs import Run


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class Stage:
    """What `fit` trains.

    models: everything the checkpoints hold, by name; trainable: the module Adam optimises;
    loss(batch, rng) -> 0-dim loss of one training batch (rng: a torch.Generator seeded per step);
    validate() -> dict of held-out metrics, "val_loss" first (called without grad, models in eval mode).
    """
    models: Dict[str, nn.Module]
    trainable: nn.Module
    loss: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
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


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step + 1)


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
        device: torch.device, resume: bool = False) -> dict:
    """Trains `stage` for cfg.steps steps on batches(start_step); returns the last validation record."""
    optimizer = torch.optim.Adam(stage.trainable.parameters(), lr=cfg.lr)
    step, best = 0, float("inf")
    if resume:
        state = run.load("last", device)
        for name, model in stage.models.items():
            model.load_state_dict(state["models"][name])
        optimizer.load_state_dict(state["optimizer"])
        step, best = state["step"], state["best_val"]
        run.truncate_metrics(step)

    def checkpoint(name: str) -> None:
        run.save(name, {"step": step, "best_val": best, "optimizer": optimizer.state_dict(),
                        "models": {k: m.state_dict() for k, m in stage.models.items()}})

    _set_mode(stage, True)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=cfg.amp and device.type == "cuda")
    data = batches(step)
    bar = tqdm(total=cfg.steps, initial=step, disable=not cfg.progress, dynamic_ncols=True, leave=False)
    record = {}
    while step < cfg.steps:
        start = time.perf_counter()
        x = next(data)
        with autocast:
            loss = stage.loss(x, step_generator(cfg.seed, step))
        if not torch.isfinite(loss):
            bar.close()
            raise NonFiniteLoss(f"the loss is {loss.item()} at step {step}; training stopped. The last good "
                                f"checkpoint is {run.path / 'last.pt'} (--resume continues from it); "
                                "try a lower --lr.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        speed = len(x) / (time.perf_counter() - start)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4g}", img_s=f"{speed:.0f}", refresh=False)
        if step % cfg.log_every == 0:
            run.log({"step": step, "loss": loss.item(), "images_per_s": speed})
        if step % cfg.eval_every == 0 or step == cfg.steps:
            record = _evaluate(stage, step)
            run.log(record)
            if record["val_loss"] < best:
                best = record["val_loss"]
                checkpoint("best")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint("last")
    bar.close()
    _set_mode(stage, False)
    return record or _evaluate(stage, step)
