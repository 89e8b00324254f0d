"""Last step: summary.md (the tables a reader wants) from results.jsonl, meta.json's finish time,
and, when the tree is a git checkout and this was not a rehearsal, a copy of the out folder's
files in benchmarks/results/<device-slug>/gpu-check/ for committing."""
import shutil
import time
from collections import defaultdict
from pathlib import Path

from . import meta, rows

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = "summary.md"
STEPS = ("build", "ceilings", "correctness", "sanitizer", "benchmarks", "training", "study")


def _fmt(value, spec=".3g", none="—"):
    if value is None or isinstance(value, str):
        return none if value is None else value
    return format(value, spec)


def _table(header, lines) -> list:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
           ["| " + " | ".join(str(c) for c in line) + " |" for line in lines] + [""]


def _steps(all_rows) -> list:
    lines = []
    for step in STEPS:
        r = rows.last(all_rows, step, "step")
        lines.append([step, "not run" if r is None else f"**{r['status']}**", _fmt(r and r.get("seconds")),
                      _fmt(r and r.get("budget_s")), (r or {}).get("reason", "")])
    return ["## Steps", ""] + _table(["step", "status", "seconds", "budget (s)", "reason"], lines)


def _ceilings(all_rows) -> list:
    c = rows.last(all_rows, "ceilings", "ceilings")
    if c is None:
        return ["## Ceilings", "", "not measured", ""]
    return ["## Ceilings (torch.matmul, copy)", ""] + _table(
        ["fp32 TFLOP/s", "tf32 TFLOP/s", "bf16 TFLOP/s", "copy GB/s", "matmul size"],
        [[_fmt(c.get(k)) for k in ("fp32_tflops", "tf32_tflops", "bf16_tflops", "copy_gbps", "matmul_size")]])


def _correctness(all_rows) -> list:
    case_rows = [r for r in all_rows if r["step"] == "correctness" and r["name"] != "step"]
    groups = defaultdict(list)
    for r in case_rows:
        if "op" in r:
            groups[(r["backend"], r["dtype"], r["precision"])].append(r)
    lines = []
    for (backend, dtype, precision), got in sorted(groups.items()):
        v = [r["value_rel_err"] for r in got if r.get("value_rel_err") is not None]
        g = [r["grad_rel_l2"] for r in got if r.get("grad_rel_l2") is not None]
        lines.append([backend, f"{dtype} {precision}", sum(r["status"] == "ok" for r in got),
                      sum(r["status"] == "failed" for r in got), f"{_fmt(max(v, default=None), '.2e')} "
                      f"({_fmt(got[0].get('value_rtol'), 'g')})", f"{_fmt(max(g, default=None), '.2e')} "
                      f"({_fmt(got[0].get('grad_rel_l2_tol'), 'g')})",
                      all(r.get("bit_equal", False) for r in got)])
    out = ["## Correctness (every op against the float64 blocked reference, poisoned outputs)", ""]
    out += _table(["backend", "dtype, precision", "ok", "failed", "max value rel. error (tol)",
                   "max grad rel. L2 (tol)", "two calls bit-equal"], lines)
    out += [f"- {r['status']}: {r['name']}: {r.get('reason', '')}" for r in case_rows if r["status"] != "ok"][:40]
    headline = [[r["workload"], r["provider"], r["n"], r["D"], r["status"],
                 f"{_fmt(r.get('value_err_over_scale'), '.2e')} ({_fmt(r.get('value_tol'), 'g')})",
                 f"{_fmt(r.get('grad_rel_l2'), '.2e')} ({_fmt(r.get('grad_rel_l2_tol'), 'g')})"]
                for r in case_rows if r["name"].startswith("accuracy ")]
    out += ["", "Public API at the headline sizes against the float64 blocked reference:", ""]
    return out + _table(["workload", "provider", "n", "D", "status", "value error / term scale (tol)",
                         "grad rel. L2 (tol)"], headline)


def _sanitizer(all_rows) -> list:
    got = [r for r in all_rows if r["step"] == "sanitizer" and r["name"] != "step"]
    return ["## compute-sanitizer", ""] + _table(
        ["run", "status", "errors", "reason"],
        [[r["name"], r["status"], _fmt(r.get("errors")), r.get("reason", "")] for r in got])


def _benchmarks(all_rows) -> list:
    cells = defaultdict(dict)
    notes = []
    for r in all_rows:
        if r["step"] != "benchmarks" or r["name"] == "step":
            continue
        if "pass" not in r:
            notes.append(f"- {r['name']}: {r['status']}: {r.get('reason', '')}")
            continue
        cells[(r["workload"], r["D"], r["n"], r["provider"])][r["pass"]] = r
    lines = []
    for (workload, dim, n, provider), passes in cells.items():
        both = passes.get("fwd+bwd", {})
        if both.get("status") != "ok":
            notes.append(f"- {workload} {provider} n={n} D={dim}: {both.get('status')}: {both.get('reason', '')}")
            continue
        lines.append([workload, dim, n, provider] +
                     [_fmt(passes.get(p, {}).get("median_ms"), ".4g") for p in ("fwd", "bwd", "fwd+bwd")] +
                     [_fmt(both.get("extra_mem_bytes", 0) / 2**20, ".4g"), _fmt(both.get("speedup_vs_reference"), ".3g"),
                      _fmt(both.get("roofline_fraction"), ".1%")])
    out = ["## Headline benchmarks (median ms; memory and ratios of fwd+bwd)", ""]
    out += _table(["workload", "D", "n", "provider", "fwd", "bwd", "fwd+bwd", "working MiB", "speedup vs reference",
                   "roofline fraction"], lines)
    return out + notes + [""]


def _training(all_rows) -> list:
    got = [r for r in all_rows if r["step"] == "training" and r["name"] != "step"]
    lines = []
    for r in got:
        if r["name"].startswith("batch "):
            largest = next((x for x in got if x["name"] == f"largest batch {r['backend']}"), {})
            budget = largest.get("budget_bytes")
            lines.append([r["backend"], r.get("images"), r["batch"], _fmt(r["images_per_s"], ".4g"),
                          _fmt(r["peak_memory_bytes"] / 2**30, ".3g"), _fmt(largest.get("largest_batch")),
                          _fmt(largest.get("first_failing_batch")),
                          "no cap" if budget is None else f"{budget / 1e9:g} GB", largest.get("reason", "")])
    return ["## Training steps (cw2 loss on random images: the CelebA conv autoencoder at 3x64x64, the MLP one "
            "at other sizes)", ""] + _table(
        ["loss backend", "images", "batch", "images/s", "peak GiB", "largest batch", "first failing", "memory cap",
         "note"], lines)


def _study(all_rows) -> list:
    got = [r for r in all_rows if r["step"] == "study" and r["name"] != "step"]
    if not got:
        return []
    lines = [[r["name"].removeprefix("cell "), r["status"], _fmt(r.get("fid"), ".2f"), _fmt(r.get("kid"), ".3f"),
              _fmt(r.get("heldout_metric"), ".4f"), _fmt(r.get("seconds_per_step", 0) * 1e3 or None, ".4g"),
              _fmt(r.get("wall_seconds"), ".0f"), r.get("reason", "")] for r in got]
    return ["", "## Batch study cells (training.batch_study; raw results in batch-study-raw.tgz)", ""] + _table(
        ["cell", "status", "domain FID", "domain KID", "held-out metric", "ms / step", "wall s", "note"], lines)


def write(out: Path) -> str:
    all_rows = rows.read(out)
    info = meta.read(out)
    title = f"# GPU check: {info.get('device', 'unknown device')}" + (" (rehearsal)" if info.get("rehearsal") else "")
    head = [title, "", f"commit {info.get('git_commit')} (dirty: {info.get('git_dirty')}), torch {info.get('torch')}, "
            f"triton {info.get('triton')}, CUDA {info.get('cuda')}, driver {info.get('driver', '—')}, "
            f"Python {info.get('python')}, {info.get('cores')} cores; finished {info.get('finished')}. "
            "Every number is a row of results.jsonl.", ""]
    text = "\n".join(head + _steps(all_rows) + _ceilings(all_rows) + _correctness(all_rows) + _sanitizer(all_rows)
                     + _benchmarks(all_rows) + _training(all_rows) + _study(all_rows))
    meta.write_text(Path(out) / SUMMARY, text)
    return text


def publish(out: Path, root: Path, device_slug: str) -> Path:
    """Copies every file of `out` to <root>/benchmarks/results/<device_slug>/gpu-check/."""
    dest = root / "benchmarks" / "results" / device_slug / "gpu-check"
    dest.mkdir(parents=True, exist_ok=True)
    for f in Path(out).iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)
    return dest


def run(out: Path, budget_s: float, rehearse: bool) -> int:
    if "device" not in meta.read(out):  # a call without the build step still says what it ran on
        from .machine import describe

        try:
            meta.update(out, describe(rehearse))
        except (RuntimeError, AssertionError) as exc:  # no GPU where one was expected: say so, summarise anyway
            meta.update(out, {"device": f"unknown ({type(exc).__name__}: {exc})"})
    meta.update(out, {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    print(write(out), flush=True)
    slug = meta.read(out).get("device_slug")
    if (ROOT / ".git").exists() and not rehearse and slug:
        print(f"[summary] copied to {publish(out, ROOT, slug)}", flush=True)
    return 0
