"""Step 1: build the extension in place for sm_90, then record the machine (row "machine", meta.json).

The build takes one of two paths, chosen after a look at the interpreter's setuptools and wheel
(choose_path; LCW_FAST_BUILD=editable|inplace forces one, e.g. to test the fallback):
  editable  `pip install -e . --no-build-isolation --no-deps`: needs setuptools >= 64 (PEP 660) and a
            bdist_wheel command (setuptools >= 70.1 has its own; older ones need the `wheel` package).
  inplace   `python setup.py build_ext --inplace`: any setuptools, no wheel; lcw_fast/_C*.so lands in
            the tree, which imports from the repository root (the command line below also writes a
            .pth file into a virtual environment that puts the root on its path, so `make`'s venv
            imports lcw_fast from any folder).
The kit builds with LCW_FAST_REQUIRE_CUDA=1 (setup.py fails when nvcc cannot be found),
TORCH_CUDA_ARCH_LIST=9.0 and MAX_JOBS = the machine's cores; the step fails too when the built
extension has no CUDA kernels. meta.json records the path taken and why. A rehearsal does not compile
(no CUDA build on a machine without a GPU): it records the build as skipped and uses the extension in
the tree. lcw_fast is imported only after the build, so this process sees the new extension.

    python -m benchmarks.gpu_check.build [--path auto|editable|inplace] [--root DIR]

builds outside the kit (what `make` runs), with setup.py's own CUDA rules (LCW_FAST_CPU_ONLY and
LCW_FAST_REQUIRE_CUDA are passed through).
"""
import argparse
import os
import subprocess
import sys
import sysconfig
import time
from importlib import metadata
from pathlib import Path
from typing import Dict, Optional, Tuple

from . import meta, rows

STEP = "build"
ROOT = Path(__file__).resolve().parents[2]
PATHS = ("editable", "inplace")
PTH = "_lcw_fast_inplace.pth"


def _version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _release(version: Optional[str]) -> Tuple[int, ...]:
    parts = []
    for part in (version or "0").split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


def tools() -> Dict[str, Optional[str]]:
    """The build tools' versions in this interpreter (None: not installed)."""
    return {"setuptools": _version("setuptools"), "wheel": _version("wheel"), "pip": _version("pip")}


def choose_path(force: str = "auto", found: Optional[Dict[str, Optional[str]]] = None) -> Tuple[str, str]:
    """("editable" | "inplace", why): editable when pip can build it here, else the in-place build."""
    if force in PATHS:
        return force, f"forced by LCW_FAST_BUILD={force}"
    if force != "auto":
        raise SystemExit(f"LCW_FAST_BUILD must be auto, editable or inplace, got {force!r}")
    found = tools() if found is None else found
    setuptools = _release(found["setuptools"])
    if found["pip"] is None:
        return "inplace", "pip is not installed"
    if setuptools < (64,):
        return "inplace", f"setuptools {found['setuptools']} < 64 has no editable wheels (PEP 660)"
    if setuptools < (70, 1) and found["wheel"] is None:
        return "inplace", f"setuptools {found['setuptools']} without the wheel package has no bdist_wheel"
    return "editable", f"setuptools {found['setuptools']}, wheel {found['wheel'] or '(in setuptools)'}"


def command(path: str) -> list:
    if path == "editable":
        return [sys.executable, "-m", "pip", "install", "-e", ".", "--no-build-isolation", "--no-deps"]
    return [sys.executable, "setup.py", "build_ext", "--inplace"]


def _link_root(root: Path) -> Optional[Path]:
    """In a virtual environment, a .pth file that puts the repository root on sys.path (inplace path)."""
    if sys.prefix == sys.base_prefix:
        return None
    pth = Path(sysconfig.get_paths()["purelib"]) / PTH
    pth.write_text(f"{root}\n")
    return pth


def install(path: str, env: dict, budget_s: Optional[float], root: Path = ROOT,
            link: bool = False) -> Tuple[Optional[int], float, str]:
    """(exit code or None on timeout, seconds, reason) of one build; its output goes to stdout/stderr.
    link: after an inplace build, put `root` on a virtual environment's path (a .pth file)."""
    cmd = command(path)
    print("+ " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    try:
        rc = subprocess.run(cmd, cwd=root, env=env, timeout=budget_s).returncode
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - t0, f"{path} build did not finish within {budget_s:.0f} s"
    if rc == 0 and path == "inplace" and link:
        pth = _link_root(root)
        if pth:
            print(f"{pth}: puts {root} on sys.path", flush=True)
    return rc, time.monotonic() - t0, "" if rc == 0 else f"{path} build exited with {rc} (see build.log)"


def run(out: Path, budget_s: float, rehearse: bool) -> int:
    found = tools()
    path, why = choose_path(os.environ.get("LCW_FAST_BUILD", "auto"), found)
    build = {"build_path": path, "build_path_reason": why, **{f"build_{k}": v for k, v in found.items()}}
    if rehearse:
        status = "skipped"
        rows.append(out, STEP, "build", status, **build,
                    reason="rehearsal: no CUDA build on a machine without a GPU; the extension in the tree is used")
    else:
        env = dict(os.environ, LCW_FAST_REQUIRE_CUDA="1", TORCH_CUDA_ARCH_LIST="9.0",
                   MAX_JOBS=str(os.cpu_count() or 1))
        env.pop("LCW_FAST_CPU_ONLY", None)
        print(f"build path: {path} ({why})", flush=True)
        rc, seconds, reason = install(path, env, budget_s)
        from lcw_fast import ops  # after the build

        cuda = ops.has_cuda_kernels()
        if rc == 0 and not cuda:
            reason = f"built, but without CUDA kernels ({ops.EXTENSION_ERROR or 'no CUDA dispatch key'})"
        status = "ok" if rc == 0 and cuda else ("timeout" if rc is None else "failed")
        rows.append(out, STEP, "build", status, rc=rc, seconds=round(seconds, 1), cuda_kernels=cuda, reason=reason,
                    max_jobs=os.cpu_count(), arch="9.0", **build)
    meta.update(out, build)
    from . import machine  # imports lcw_fast: only now that the extension is built

    info = machine.describe(rehearse)
    rows.append(out, STEP, "machine", "ok", **info)
    meta.update(out, info)
    return 0 if status in ("ok", "skipped") else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check.build",
                                description="Builds lcw_fast's C++/CUDA extension by the path this interpreter's "
                                            "setuptools and wheel allow (see the module docstring).")
    p.add_argument("--path", choices=("auto",) + PATHS, default=os.environ.get("LCW_FAST_BUILD", "auto"),
                   help="editable: pip install -e; inplace: setup.py build_ext --inplace; auto (default): "
                        "editable where pip can build it, else inplace")
    p.add_argument("--root", type=Path, default=ROOT, help="the source tree to build (default: this repository)")
    p.add_argument("--no-link", dest="link", action="store_false",
                   help="after an inplace build, do not write the .pth file that puts the tree on a virtual "
                        "environment's path")
    args = p.parse_args(argv)
    path, why = choose_path(args.path)
    print(f"lcw_fast build: {path} ({why})", flush=True)
    rc, seconds, reason = install(path, dict(os.environ), None, args.root.resolve(), args.link)
    print(f"lcw_fast build: {path} {'ok' if rc == 0 else reason} in {seconds:.0f} s", flush=True)
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
