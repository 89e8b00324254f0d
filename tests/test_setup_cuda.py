"""setup.py's search for nvcc (CUDA_HOME, PATH, /usr/local/cuda) and LCW_FAST_REQUIRE_CUDA=1, in a
subprocess with a controlled environment; nothing is compiled."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_py(code: str, tmp_path: Path, **env):
    """Runs `code` after importing setup.py with DEFAULT_CUDA_HOME pointed at an empty folder."""
    base = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "CUDA_PATH", "LCW_FAST_CPU_ONLY")}
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import setup; "
              f"setup.DEFAULT_CUDA_HOME = {str(tmp_path / 'no-cuda')!r}; {code}")
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**base, **env})


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def test_require_cuda_without_nvcc_fails_naming_cuda_home_and_path(tmp_path):
    got = _setup_py("setup._extension()", tmp_path, PATH=str(tmp_path / "bin"), LCW_FAST_REQUIRE_CUDA="1",
                    CUDA_HOME=str(tmp_path / "cuda-missing"))
    assert got.returncode == 1
    message = got.stderr.strip().splitlines()[-1]
    assert "LCW_FAST_REQUIRE_CUDA=1 but nvcc was not found" in message
    assert f"CUDA_HOME={tmp_path / 'cuda-missing'}" in message and f"PATH={tmp_path / 'bin'}" in message


def test_require_cuda_and_cpu_only_contradict(tmp_path):
    got = _setup_py("setup._extension()", tmp_path, LCW_FAST_REQUIRE_CUDA="1", LCW_FAST_CPU_ONLY="1")
    assert got.returncode == 1 and "contradict" in got.stderr


def test_nvcc_on_path_gives_its_toolkit_also_through_a_wrapper(tmp_path):
    toolkit = tmp_path / "cuda-13.0"
    _executable(toolkit / "bin" / "nvcc", "#!/bin/sh\necho '#$ _HERE_=" + str(toolkit / "bin") + "' >&2\n")
    _executable(tmp_path / "wrap" / "nvcc", f"#!/bin/sh\nexec {toolkit / 'bin' / 'nvcc'} \"$@\"\n")
    for path in (toolkit / "bin", tmp_path / "wrap"):
        got = _setup_py("print(setup._find_cuda_home())", tmp_path, PATH=f"{path}:/usr/bin:/bin")
        assert got.returncode == 0, got.stderr
        assert got.stdout.strip() == str(toolkit)


def test_cuda_home_comes_first(tmp_path):
    home = tmp_path / "home"
    _executable(home / "bin" / "nvcc", "#!/bin/sh\n")
    got = _setup_py("print(setup._find_cuda_home())", tmp_path, PATH="/usr/bin:/bin", CUDA_HOME=str(home))
    assert got.stdout.strip() == str(home)
