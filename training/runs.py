"""A run folder: config.json, metrics.jsonl, checkpoints last.pt / best.pt (written atomically), PNGs."""
import json
import os
import platform
from pathlib import Path
from typing import Optional

import torch

from .errors import NotARun, RunExists

CHECKPOINTS = ("last", "best")


class Run:
    """The folder of one training stage; created on the first write, so reading never makes folders."""

    def __init__(self, path):
        self.path = Path(path)
        self.metrics_path = self.path / "metrics.jsonl"

    def exists(self) -> bool:
        return (self.path / "config.json").exists()

    def check_start(self, resume: bool, overwrite: bool) -> None:
        """Raises RunExists when a fresh start (neither `resume` nor `overwrite`) would replace a run here."""
        if self.exists() and not (resume or overwrite):
            raise RunExists(f"{self.path} already holds a run: --resume continues it, --overwrite replaces it "
                            "(or choose another --out)")

    def start(self, config: dict, resume: bool) -> None:
        """Writes config.json; a fresh start (not `resume`) first deletes an earlier run's metrics and
        checkpoints (check_start has made sure that this was asked for)."""
        if not resume:
            self.metrics_path.unlink(missing_ok=True)
            for name in CHECKPOINTS:
                (self.path / f"{name}.pt").unlink(missing_ok=True)
        atomic_text(self.path / "config.json", json.dumps(config, indent=2) + "\n")

    def config(self) -> dict:
        path = self.path / "config.json"
        if not path.exists():
            raise NotARun(f"{self.path} is not a run folder (no config.json)")
        return json.loads(path.read_text())

    def log(self, record: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def metrics(self) -> list:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line]

    def truncate_metrics(self, step: int) -> None:
        """Drops records after `step` (written after the checkpoint a resumed run restarts from)."""
        kept = [r for r in self.metrics() if r.get("step", 0) <= step and "heldout_metric" not in r]
        atomic_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def save(self, name: str, state: dict) -> None:
        """Writes `name`.pt via a temporary file and a rename: a crash never leaves a torn checkpoint."""
        atomic_write(self.path / f"{name}.pt", lambda tmp: torch.save(state, tmp))

    def has(self, name: str = "last") -> bool:
        return (self.path / f"{name}.pt").exists()

    def _checkpoint(self, name: str) -> Path:
        path = self.path / f"{name}.pt"
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint {path}")
        return path

    def load(self, name: str = "last", map_location: Optional[torch.device] = None) -> dict:
        return torch.load(self._checkpoint(name), map_location=map_location or "cpu", weights_only=False)

    def step(self, name: str = "last") -> int:
        """The training step of checkpoint `name`; its tensors are memory-mapped, not read."""
        return torch.load(self._checkpoint(name), map_location="cpu", weights_only=False, mmap=True)["step"]


def atomic_write(path: Path, write) -> None:
    """write(tmp) to a temporary file beside `path`, then a rename: `path` is never left half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def atomic_text(path: Path, text: str) -> None:
    """Writes `text` to `path` through atomic_write."""
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), what times measured on the CPU come from."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
