"""Builds lcw_fast._C: the C++ CPU kernels, plus the CUDA kernels when nvcc is available.

Environment:
  LCW_FAST_CPU_ONLY=1     build the CPU kernels only (no nvcc needed).
  CUDA_HOME               CUDA toolkit; defaults to /usr/local/cuda when that exists.
  TORCH_CUDA_ARCH_LIST    GPU architectures; defaults to 9.0 (H100) when no GPU is visible.
  MAX_JOBS                parallel compile jobs (ninja).
"""
import glob
import os
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _find_cuda_home():
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if not home and os.path.exists("/usr/local/cuda/bin/nvcc"):
        home = "/usr/local/cuda"
    if home and os.path.exists(os.path.join(home, "bin", "nvcc")):
        os.environ["CUDA_HOME"] = home  # torch.utils.cpp_extension reads it at import time
        return home
    return None


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
    cuda_home = None if _env_flag("LCW_FAST_CPU_ONLY") else _find_cuda_home()
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
