"""Results on disk: one CSV + JSON per run, and a Markdown summary and PNG plots over all runs in a folder.

A run writes <out>/<label>.json (meta: device, versions, git commit, settings, ceilings, provider
availability; rows: every cell with its raw times) and <out>/<label>.csv (the same rows, raw times
as space-separated milliseconds). `write_summary(out)` then reads every run JSON in <out> (later runs
win for the same cell), and writes:
  summary.md                 headline table (fwd+bwd at the headline D and n, largest n, roofline
                             fraction, speedup vs reference), a table of all sizes, runs, ceilings
  time_vs_n.png              median fwd+bwd time vs n per provider, log-log, one panel per (workload, D)
  speedup_vs_reference.png   reference time / provider time at the same n
  memory_vs_n.png            working memory of one fwd+bwd call (above its inputs) vs n
Run `python -m benchmarks.report <out>` to rebuild the summary from the JSON files alone.
"""
import csv
import json
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

COLUMNS = (
    "suite", "workload", "provider", "backend", "mode", "dtype", "pass", "n", "m", "D", "status", "reason",
    "repeats", "median_ms", "q20_ms", "q80_ms", "min_ms", "max_ms", "peak_mem_bytes", "extra_mem_bytes",
    "flops", "bytes", "exec_tensor_flops", "min_tensor_flops", "exec_mufu", "min_mufu", "exec_bytes", "min_bytes",
    "terms", "tflops", "ceiling", "ceiling_tflops", "executed_ms", "executed_fraction", "roofline_ms",
    "roofline_fraction", "warmup_ms", "times_ms",
)
SUMMARY_PASS = "fwd+bwd"
PLOTS = ("time_vs_n.png", "speedup_vs_reference.png", "memory_vs_n.png")
WORKLOAD_TITLE = {"normality": "cw_normality(z), grad w.r.t. z",
                  "distance": "cw_distance(x, y), grad w.r.t. y"}
_KEY = ("suite", "workload", "provider", "pass", "n", "D")


def write_run(out: Path, label: str, meta: dict, rows: List[dict]) -> Tuple[Path, Path]:
    """<out>/<label>.json and <out>/<label>.csv for one run."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / f"{label}.json", out / f"{label}.csv"
    json_path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: " ".join(f"{t:.4f}" for t in v) if isinstance(v, list) else v
                             for k, v in row.items()})
    return json_path, csv_path


def load_runs(out: Path) -> List[dict]:
    """Every run JSON in `out`, oldest first."""
    runs = []
    for path in sorted(out.glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "meta" in data and "rows" in data:
            data["file"] = path.name
            runs.append(data)
    return sorted(runs, key=lambda r: r["meta"].get("started", ""))


def merged_rows(runs: Sequence[dict]) -> List[dict]:
    """All rows of all runs (each with its run's device_type), a later run replacing an earlier
    one's row for the same cell."""
    cells = {}
    for run in runs:
        for row in run["rows"]:
            cells[tuple(row[k] for k in _KEY)] = {**row, "device_type": run["meta"].get("device_type")}
    return list(cells.values())


def _panels(rows: Iterable[dict]) -> List[Tuple[str, int]]:
    return sorted({(r["workload"], r["D"]) for r in rows}, key=lambda wd: (list(WORKLOAD_TITLE).index(wd[0]), wd[1]))


def _providers(rows: Iterable[dict]) -> List[str]:
    seen = []
    for r in rows:
        if r["provider"] not in seen:
            seen.append(r["provider"])
    return seen


def _pass_rows(rows, workload, dim, provider=None) -> Dict[int, dict]:
    """n -> the SUMMARY_PASS row of (workload, dim[, provider])."""
    return {r["n"]: r for r in rows if r["workload"] == workload and r["D"] == dim
            and r["pass"] == SUMMARY_PASS and (provider is None or r["provider"] == provider)}


def largest_n(rows_by_n: Dict[int, dict]) -> Tuple[Optional[int], str]:
    """Largest n measured, and what stopped the provider there (the first failed n above it)."""
    ok = [n for n, r in rows_by_n.items() if r["status"] == "ok"]
    best = max(ok) if ok else None
    above = sorted(n for n, r in rows_by_n.items() if r["status"] != "ok" and (best is None or n > best))
    if not above:
        return best, "end of grid"
    first = rows_by_n[above[0]]
    if first["status"] == "OOM":
        return best, f"OOM at n = {above[0]}"
    if first["status"] == "skipped":
        return best, f"n = {above[0]} not run: {first['reason']}"
    return best, f"{first['status']} at n = {above[0]}: {first['reason']}"


def _fmt_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.3g} ms" if ms >= 0.01 else f"{ms * 1000:.3g} us"


def _fmt_bytes(b: float) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.1f} MiB"


def _cell(row: Optional[dict], ref: Optional[dict]) -> str:
    if row is None or row["status"] == "skipped":
        return "—"
    if row["status"] != "ok":
        return row["status"]
    pct = 100 * row["roofline_fraction"]
    text = f"{_fmt_ms(row['median_ms'])} · {pct:.3g} %"
    speedup = _speedup(row, ref)
    if speedup is not None:
        text += f" · {speedup:.2g}×" if speedup < 10 else f" · {speedup:.0f}×"
    return text


def _memory(row: Optional[dict]) -> str:
    """GPU rows: peak allocated during the call; CPU rows: RSS growth (see benchmarks/timing.py)."""
    if row is None:
        return "—"
    return _fmt_bytes(row["peak_mem_bytes"] if row.get("device_type") == "cuda" else row["extra_mem_bytes"])


def _table(rows, workload, dim, ns) -> List[str]:
    lines = [f"| provider | {' | '.join(f'n = {n}' for n in ns)} | largest n | memory there | stopped by |",
             "|---" * (len(ns) + 4) + "|"]
    ref = _pass_rows(rows, workload, dim, "reference")
    for provider in _providers(r for r in rows if r["workload"] == workload and r["D"] == dim):
        by_n = _pass_rows(rows, workload, dim, provider)
        if not any(r["status"] in ("ok", "OOM") for r in by_n.values()):
            continue  # never ran at this D (unavailable, or cut by the time budget)
        best, stop = largest_n(by_n)
        cells = " | ".join(_cell(by_n.get(n), ref.get(n)) for n in ns)
        lines.append(f"| {provider} | {cells} | {best if best is not None else '—'} | "
                     f"{_memory(by_n.get(best))} | {stop} |")
    return lines


def _fmt(v, spec=".3g") -> str:
    return "n/a" if v is None else format(v, spec)


def summary_markdown(runs: Sequence[dict], headline_dims: Sequence[int], headline_ns: Sequence[int]) -> str:
    rows = merged_rows(runs)
    devices = sorted({r["meta"]["device"] for r in runs})
    out = [f"# lcw-fast benchmarks on {', '.join(devices)}", "",
           f"Cells: median time of one {SUMMARY_PASS} call · fraction of the measured roofline "
           "(benchmarks/roofline.py: the minimum work at the row's precision - tensor FLOPs counting "
           "every term of a split product, rsqrt, HBM bytes - against the ceiling of the unit it runs "
           "on and the copy bandwidth, measured in the same run; the CSV adds the executed work and "
           "its fraction) · speedup over "
           "`reference` at the same n. \"—\": not in the grid or not run; \"largest n\": the largest "
           f"n whose {SUMMARY_PASS} completed, and the memory of that call (GPU: peak allocated, "
           "inputs included; CPU: growth of the resident set).", ""]
    out.append("## Headline")
    for workload, dim in _panels(rows):
        if dim in headline_dims:
            out += ["", f"### {WORKLOAD_TITLE[workload]}, D = {dim}", ""] + _table(rows, workload, dim, headline_ns)
    out += ["", "## All sizes"]
    for workload, dim in _panels(rows):
        ns = sorted({r["n"] for r in rows if r["workload"] == workload and r["D"] == dim})
        out += ["", f"### {WORKLOAD_TITLE[workload]}, D = {dim}", ""] + _table(rows, workload, dim, ns)
    out += ["", "## Runs", "",
            "| file | suites | device | torch | triton | CUDA | git commit | started | fp32 / tf32 / bf16 matmul TFLOP/s | copy GB/s |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        m, c = run["meta"], run["meta"]["ceilings"]
        commit = m["git_commit"] + (" (dirty)" if m.get("git_dirty") else "")
        out.append(f"| {run['file']} | {', '.join(m['settings']['suites'])} | {m['device']} | {m['torch']} | "
                   f"{m['triton'] or 'n/a'} | {m['cuda'] or 'n/a'} | {commit} | {m['started']} | "
                   f"{_fmt(c['fp32_tflops'])} / {_fmt(c['tf32_tflops'])} / {_fmt(c['bf16_tflops'])} | "
                   f"{_fmt(c['copy_gbps'], '.4g')} |")
    skipped = {name: why for run in runs for name, why in run["meta"]["providers"].items() if why != "available"}
    if skipped:
        out += ["", "## Providers not run", ""] + [f"- `{name}`: {why}" for name, why in sorted(skipped.items())]
    return "\n".join(out) + "\n"


def _plot(rows, path: Path, ylabel: str, value, hline: Optional[float] = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(rows)
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.8 * nrows), squeeze=False)
    for ax, (workload, dim) in zip(axes.flat, panels):
        ref = _pass_rows(rows, workload, dim, "reference")
        for provider in _providers(rows):
            pts = sorted((n, value(r, ref.get(n))) for n, r in _pass_rows(rows, workload, dim, provider).items()
                         if r["status"] == "ok")
            pts = [(n, v) for n, v in pts if v is not None and v > 0]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=provider)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        if hline is not None:
            ax.axhline(hline, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{workload}, D = {dim}", fontsize=10)
        ax.set_xlabel("n")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _speedup(row, ref) -> Optional[float]:
    if ref is None or ref["status"] != "ok" or row["provider"] == "reference":
        return None
    return ref["median_ms"] / row["median_ms"]


def write_summary(out: Path, headline_dims: Sequence[int], headline_ns: Sequence[int]) -> List[Path]:
    """summary.md and the PNG plots from every run JSON in `out`; returns the paths written."""
    runs = load_runs(out)
    if not runs:
        raise FileNotFoundError(f"no run JSON files in {out}")
    rows = merged_rows(runs)
    md = out / "summary.md"
    md.write_text(summary_markdown(runs, headline_dims, headline_ns))
    time_png, speed_png, mem_png = (out / p for p in PLOTS)
    _plot(rows, time_png, f"{SUMMARY_PASS} time (ms)", lambda r, ref: r["median_ms"])
    _plot(rows, speed_png, "speedup vs reference", _speedup, hline=1.0)
    _plot(rows, mem_png, "working memory (MiB)", lambda r, ref: r["extra_mem_bytes"] / 2**20)
    return [md, time_png, speed_png, mem_png]


def main(argv=None) -> None:
    """python -m benchmarks.report OUT [--headline-dims 64,12288] [--headline-ns 4096,16384,65536]"""
    import argparse

    parser = argparse.ArgumentParser(description="Rebuild summary.md and the plots from the run JSON files in OUT.")
    parser.add_argument("out", type=Path, help="folder holding the run JSON files")
    parser.add_argument("--headline-dims", default="64,12288", help="D values of the headline tables")
    parser.add_argument("--headline-ns", default="4096,16384,65536", help="n columns of the headline tables")
    args = parser.parse_args(argv)
    paths = write_summary(args.out, [int(v) for v in args.headline_dims.split(",")],
                          [int(v) for v in args.headline_ns.split(",")])
    print("\n".join(str(p) for p in paths), file=sys.stdout)


if __name__ == "__main__":
    main()
