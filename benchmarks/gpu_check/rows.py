"""results.jsonl: one JSON object a line, appended and synced the moment it is known.

Every row has `step`, `name` and `status` (one of STATUSES) plus its measured numbers. A row is
written by one os.write of the whole line on a file opened with O_APPEND, then fsync'd, so a kill
at any moment leaves every earlier row intact and at worst no trace of the one being written.
The step's own verdict is the row named "step", written by `end_step` after the step's process
has exited (or was killed by its timeout), with the reason and the tail of its log when not ok.
"""
import json
import math
import os
import time
from pathlib import Path
from typing import Iterable, List, Optional

STATUSES = ("ok", "failed", "skipped", "timeout")
RESULTS = "results.jsonl"
TIMEOUT_RCS = (124, 137)  # `timeout`'s own code, and SIGKILL after its --kill-after grace
LOG_TAIL_LINES = 25


def _clean(value):
    """JSON-safe copy: non-finite floats become strings ("nan", "inf"), tuples lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def append(out: Path, step: str, name: str, status: str, **fields) -> dict:
    """Appends one row to <out>/results.jsonl and syncs it to disk; returns the row."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    row = _clean({"step": step, "name": name, "status": status, **fields,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    line = (json.dumps(row, allow_nan=False) + "\n").encode()
    fd = os.open(Path(out) / RESULTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return row


def read(out: Path) -> List[dict]:
    """Every complete row of <out>/results.jsonl (a line cut short by a kill is left out)."""
    path = Path(out) / RESULTS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def log_tail(log: Path, offset: int, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of what was appended to `log` after byte `offset`."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def step_verdict(rc: int, rows: Iterable[dict]) -> tuple:
    """(status, reason) of a step from its exit code and the case rows it wrote."""
    rows = [r for r in rows if r["name"] != "step"]
    failed = [r for r in rows if r["status"] in ("failed", "timeout")]
    if rc in TIMEOUT_RCS:
        return "timeout", f"killed by its time budget (exit {rc}) after {len(rows)} rows"
    if rc != 0:
        return "failed", f"exit code {rc}" + (f"; {len(failed)} failed rows" if failed else "")
    if failed:
        return "failed", f"{len(failed)} of {len(rows)} rows failed, first: {failed[0]['name']}"
    if rows and all(r["status"] == "skipped" for r in rows):
        return "skipped", rows[0].get("reason", "every row skipped")
    return "ok", ""


def end_step(out: Path, step: str, rc: int, seconds: float, budget_s: float, log: Path,
             offset: int) -> dict:
    """Writes the step's verdict row (the name "step"), with its log tail when it is not ok."""
    status, reason = step_verdict(rc, (r for r in read(out) if r["step"] == step))
    fields = {"rc": rc, "seconds": round(seconds, 1), "budget_s": budget_s, "reason": reason}
    if status != "ok":
        fields["log_tail"] = log_tail(log, offset)
    return append(out, step, "step", status, **fields)


def last(rows: Iterable[dict], step: str, name: str) -> Optional[dict]:
    """The last row of `step` called `name`, or None."""
    found = None
    for r in rows:
        if r["step"] == step and r["name"] == name:
            found = r
    return found
