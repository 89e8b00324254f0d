# make demo : set up .venv (pinned requirements, builds the extension) and run the main job
# make test : set up .venv and run the test suite (what CI runs)
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.lcw_fast_installed
SOURCES := setup.py pyproject.toml requirements.txt requirements-dev.txt \
           $(wildcard csrc/*.cpp csrc/*/*.cpp csrc/*/*.h csrc/*/*.cu csrc/*/*.cuh)

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): $(SOURCES)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e . --no-build-isolation --no-deps
	touch $@

demo: setup
	$(PY) -m training.demo

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m pytest -q benchmarks

clean:
	rm -rf build *.egg-info lcw_fast/*.so
