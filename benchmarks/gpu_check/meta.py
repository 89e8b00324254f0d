"""<out>/meta.json: what the kit ran on and when it finished, merged and written atomically."""
import json
import os
from pathlib import Path

META = "meta.json"


def read(out: Path) -> dict:
    path = Path(out) / META
    return json.loads(path.read_text()) if path.exists() else {}


def update(out: Path, info: dict) -> None:
    """Merges `info` into <out>/meta.json, through a temporary file and a rename."""
    write_text(Path(out) / META, json.dumps({**read(out), **info}, indent=1) + "\n")


def write_text(path: Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename (never half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
