"""Where a training command runs: its device, and under torchrun its rank among the K processes.

    torchrun --nproc_per_node=K -m training.train ...   # K processes, one global batch split K ways

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `start` then joins the process group (nccl on CUDA,
gloo on the CPU) and gives each process the device cuda:LOCAL_RANK (or the CPU). Every rank
computes the same global batch from (seed, step) and keeps its rows (shard); rank 0 alone writes.
"""
import atexit
import os
import signal
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

from .errors import ConfigError, RankFailed


def pick_device(name: str, threads: Optional[int] = None, local_rank: int = 0) -> torch.device:
    """The torch.device for --device (auto: cuda if available, else cpu; "cuda" under torchrun:
    cuda:LOCAL_RANK); sets the CPU thread count if given. A device that is not there (cuda without a
    visible GPU, cuda:N beyond the last one, a name torch does not know) is a ConfigError."""
    if threads:
        torch.set_num_threads(threads)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and local_rank:
        name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name}: not a device name (auto, cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {name}: no CUDA GPU is visible here (torch.cuda.is_available() is False); "
                              "use --device cpu (or auto)")
        if (device.index or 0) >= count:
            raise ConfigError(f"--device {name}: only {count} CUDA GPU(s) here (cuda:0 to cuda:{count - 1})")
    return device


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank of size processes (size 1: no torch.distributed)."""
    device: torch.device
    rank: int = 0
    size: int = 1

    @property
    def writer(self) -> bool:
        """Rank 0 writes checkpoints, metrics and pictures; the others only compute."""
        return self.rank == 0

    @property
    def group(self):
        """The process group of the distributed losses, None for one process."""
        return dist.group.WORLD if self.size > 1 else None

    def local_batch(self, batch_size: int) -> int:
        """Rows of a global batch of `batch_size` that this rank holds."""
        if batch_size % self.size:
            raise ConfigError(f"--batch-size {batch_size} must be a multiple of the {self.size} torchrun processes")
        return batch_size // self.size

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global (B, ...) tensor (B a multiple of size)."""
        local = self.local_batch(len(rows))
        return rows[self.rank * local:(self.rank + 1) * local]

    def sum_gradients(self, module: torch.nn.Module) -> None:
        """All-reduces (sums) the parameter gradients: each rank's are its rows' share of the global loss's."""
        if self.size == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        for g, reduced in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(reduced.view_as(g))

    def share_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) to every rank, as DDP's broadcast_buffers does."""
        if self.size == 1:
            return
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def lost_peer(error: BaseException) -> bool:
    """Whether `error` says that another process of the job is gone (gloo raises plain RuntimeErrors)."""
    return isinstance(error, (dist.DistError, RankFailed)) or (
        isinstance(error, RuntimeError) and any(s in str(error) for s in ("gloo", "NCCL", "Connection")))


def _stopped(signum, frame):
    raise RankFailed("torchrun stopped this process because another process of the job failed (torchrun's "
                     "report names it)")


def join_group(backend: str, **kwargs) -> None:
    """dist.init_process_group(backend, **kwargs), torch._dynamo imported first: imported after it (torch.optim
    does so at its first optimizer), it keeps the default group alive past destroy_process_group (seen with
    torch 2.14), and gloo's threads, still running as the interpreter exits, abort it now and then (SIGABRT,
    "terminate called without an active exception") after all the work is done."""
    import torch._dynamo  # noqa: F401

    dist.init_process_group(backend, **kwargs)


def start(device: str = "auto", threads: Optional[int] = None) -> World:
    """The World of this process: one process, or a rank of a torchrun job (joins its process group once)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    place = pick_device(device, threads, local_rank)
    if size == 1:
        return World(place)
    if not dist.is_initialized():
        if place.type == "cuda":
            torch.cuda.set_device(place)
        join_group("nccl" if place.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)
        signal.signal(signal.SIGTERM, _stopped)  # torchrun's agent stops the survivors when one process dies
    return World(place, dist.get_rank(), dist.get_world_size())
