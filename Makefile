# make demo : set up .venv (pinned requirements, builds the extension) and run the main job
# make test : set up .venv and run the test suite (what CI runs)
#
# CUDA kernels: `make test` compiles them wherever nvcc is (tests/test_cuda_build.py checks the build,
# even without a GPU); `make demo` and `make setup` only where a GPU is visible (nvidia-smi), since a
# CPU machine never runs them (a CPU-only build takes about a minute, the CUDA one several).
# CUDA=1 or CUDA=0 forces either. The build path (pip install -e, or setup.py build_ext --inplace where
# the venv's setuptools/wheel cannot build an editable wheel) is chosen by benchmarks/gpu_check/build.py.
VENV    ?= .venv
PY      := $(VENV)/bin/python
CUDA    ?= auto
SOURCES := setup.py pyproject.toml requirements.txt requirements-dev.txt \
           $(wildcard csrc/*.cpp csrc/*/*.cpp csrc/*/*.h csrc/*/*.cuh csrc/*/*.cu)
GPU     := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1 || echo 0)
# stamp suffix of each target's build: cuda (CPU + CUDA kernels where nvcc is) or cpu; demo keeps a
# CUDA build already there
TEST_BUILD := $(if $(filter 0,$(CUDA)),cpu,cuda)
HAS_CUDA_BUILD := $(filter 1,$(GPU))$(wildcard $(VENV)/.lcw_fast_cuda)
DEMO_BUILD := $(if $(filter 1,$(CUDA)),cuda,$(if $(filter 0,$(CUDA)),cpu,$(if $(HAS_CUDA_BUILD),cuda,cpu)))

.PHONY: setup demo test bench clean

setup: $(VENV)/.lcw_fast_$(DEMO_BUILD)

$(VENV)/.lcw_fast_cpu $(VENV)/.lcw_fast_cuda: $(VENV)/.lcw_fast_%: $(SOURCES)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	rm -f $(VENV)/.lcw_fast_cpu $(VENV)/.lcw_fast_cuda
	LCW_FAST_CPU_ONLY=$(if $(filter cpu,$*),1,0) $(PY) -m benchmarks.gpu_check.build
	touch $@

demo: $(VENV)/.lcw_fast_$(DEMO_BUILD)
	$(PY) -m training.demo

test: $(VENV)/.lcw_fast_$(TEST_BUILD)
	$(PY) -m pytest -q tests

bench: $(VENV)/.lcw_fast_$(TEST_BUILD)
	$(PY) -m pytest -q benchmarks

clean:
	rm -rf build *.egg-info lcw_fast/*.so $(VENV)/.lcw_fast_cpu $(VENV)/.lcw_fast_cuda
