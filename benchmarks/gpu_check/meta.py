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
    merged = {**read(out), **info}
    tmp = Path(out) / (META + ".tmp")
    tmp.write_text(json.dumps(merged, indent=1) + "\n")
    os.replace(tmp, Path(out) / META)
