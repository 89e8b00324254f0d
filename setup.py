"""Builds lcw_fast._C: the C++ CPU kernels, plus the CUDA kernels when nvcc is available.

Environment:
  LCW_FAST_CPU_ONLY=1     build the CPU kernels only (no nvcc needed).
  LCW_FAST_REQUIRE_CUDA=1 fail unless the CUDA kernels are built (no silent CPU-only build).
  CUDA_HOME               CUDA toolkit (or CUDA_PATH); else the toolkit of the nvcc on PATH; else
                          /usr/local/cuda when it has bin/nvcc. Without nvcc: CPU kernels only.
  TORCH_CUDA_ARCH_LIST    GPU architectures; defaults to 9.0 (H100) when no GPU is visible.
  MAX_JOBS                parallel compile jobs (ninja).
"""
import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


DEFAULT_CUDA_HOME = "/usr/local/cuda"


def _cuda_home_candidates():
    """(where it came from, toolkit folder) in the order they are tried."""
    found = []
    for name in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(name):
            found.append((name, os.environ[name]))
    nvcc = shutil.which("nvcc")
    if nvcc:
        found.append(("PATH", _toolkit_of(nvcc)))
    found.append(("default", DEFAULT_CUDA_HOME))
    return found


def _toolkit_of(nvcc):
    """The toolkit folder of an nvcc found on PATH: nvcc's own _HERE_ (its bin/, also through a
    wrapper script such as /usr/local/bin/nvcc), else the folder above the resolved file's bin/."""
    try:
        out = subprocess.run([nvcc, "--dryrun", "-v", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
        here = re.search(r"^#\$ _HERE_=(.+)$", out.stdout + out.stderr, re.M)
    except (OSError, subprocess.SubprocessError):
        here = None
    return os.path.dirname(here.group(1).strip() if here else os.path.dirname(os.path.realpath(nvcc)))


def _find_cuda_home():
    """The first candidate toolkit that has bin/nvcc; exported as CUDA_HOME for torch. None if none."""
    for _, home in _cuda_home_candidates():
        if os.path.exists(os.path.join(home, "bin", "nvcc")):
            os.environ["CUDA_HOME"] = home  # torch.utils.cpp_extension reads it at import time
            return home
    return None


def _no_nvcc_message():
    looked = ", ".join(f"{home}/bin/nvcc ({origin})" for origin, home in _cuda_home_candidates())
    return (f"lcw_fast: LCW_FAST_REQUIRE_CUDA=1 but nvcc was not found (looked at {looked}); "
            f"CUDA_HOME={os.environ.get('CUDA_HOME', '(unset)')}, no nvcc on PATH={os.environ.get('PATH', '')}. "
            "Set CUDA_HOME to the CUDA toolkit or put its bin/ on PATH.")


def _nvidia_wheel_includes():
    """cuBLAS headers ship in torch's nvidia/* wheels, not in the toolkit on our machines."""
    dirs = []
    for path in sys.path:
        dirs += glob.glob(os.path.join(path, "nvidia", "cu1*", "include"))
        dirs += glob.glob(os.path.join(path, "nvidia", "cublas", "include"))
    return sorted(set(dirs))


def _cublas_link_args():
    """Links libcublas from torch's nvidia wheel (found first), with an rpath to it; torch loads the
    same soname at import, so the GPU machine's own wheel satisfies it. Falls back to -lcublas."""
    for path in sys.path:
        for lib_dir in sorted(glob.glob(os.path.join(path, "nvidia", "cu1*", "lib"))
                              + glob.glob(os.path.join(path, "nvidia", "cublas", "lib"))):
            libs = sorted(glob.glob(os.path.join(lib_dir, "libcublas.so.*")))
            if libs:
                return [f"-L{lib_dir}", f"-l:{os.path.basename(libs[0])}", f"-Wl,-rpath,{lib_dir}"]
    return ["-lcublas"]


def _extension():
    require_cuda = _env_flag("LCW_FAST_REQUIRE_CUDA")
    if require_cuda and _env_flag("LCW_FAST_CPU_ONLY"):
        raise SystemExit("lcw_fast: LCW_FAST_REQUIRE_CUDA=1 and LCW_FAST_CPU_ONLY=1 contradict each other")
    cuda_home = None if _env_flag("LCW_FAST_CPU_ONLY") else _find_cuda_home()
    if require_cuda and cuda_home is None:
        raise SystemExit(_no_nvcc_message())
    from torch.utils import cpp_extension  # after CUDA_HOME is set

    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    # errno and FP traps off, so that GCC vectorises sqrt and division in the CPU kernels' loops
    cxx_flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    link_flags = ["-fopenmp"]
    if cuda_home is None:
        print("lcw_fast: building the CPU kernels only", file=sys.stderr)
        return cpp_extension.CppExtension(
            "lcw_fast._C", sources, extra_compile_args={"cxx": cxx_flags}, extra_link_args=link_flags,
            py_limited_api=True,
        )

    import torch

    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0"  # torch's arch detection fails without a GPU
    sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")) + glob.glob(os.path.join("csrc", "cuda", "*.cpp")))
    print(f"lcw_fast: building CPU + CUDA kernels (CUDA_HOME={cuda_home}, "
          f"TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST')})", file=sys.stderr)
    return cpp_extension.CUDAExtension(
        "lcw_fast._C",
        sources,
        include_dirs=_nvidia_wheel_includes(),
        extra_compile_args={
            "cxx": cxx_flags + ["-DLCW_FAST_WITH_CUDA"],
            "nvcc": ["-O3", "-lineinfo", "-DLCW_FAST_WITH_CUDA"],
        },
        extra_link_args=link_flags + _cublas_link_args(),
        py_limited_api=True,
    )


def main():
    extension = _extension()  # first: it sets CUDA_HOME before torch.utils.cpp_extension reads it
    from torch.utils.cpp_extension import BuildExtension

    setup(
        ext_modules=[extension],
        cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
        options={"bdist_wheel": {"py_limited_api": "cp39"}},
    )


if __name__ == "__main__":
    main()
