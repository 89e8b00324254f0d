#!/usr/bin/env bash
# The GPU kit rehearsed on the GPU machine's own software, on a machine without a GPU:
#
#   bash benchmarks/device_stack.sh [--out DIR] [--python PYTHON]
#
# Run it after every change to a kernel, its config tables or the kit (benchmarks/gpu_check*), before a
# session with a device spends its 15 minutes: CI rehearses on our pinned stack (torch 2.14.1,
# triton 3.8) only, and triton 3.6 compiles, spills and autotunes differently. About 4 minutes on 2 cores
# (5.5 on a loaded machine; the first run also builds the venv: 80 s more, from the local package cache).
#   1. venv   .venv-device (kept; rebuilt when benchmarks/device_stack_requirements.txt changes): torch
#             2.11.0, triton 3.6.0, torchvision 0.26.0, numpy 2.3.5 and only packages the GPU machine has,
#             with the setuptools the venv brings (65.5 without wheel on Python 3.11).
#   2. tree   a copy of the working tree as the device tool sends it (tracked and untracked-not-ignored
#             files) in the work folder, so the build never touches this checkout's extension.
#   3. build  the extension with its CUDA kernels as the kit's build step does (benchmarks/gpu_check/build.py:
#             the path it chooses for this setuptools, LCW_FAST_REQUIRE_CUDA=1, sm_90, MAX_JOBS = cores).
#   4. kit    gpu_check.sh --rehearse on that build.
#   5. tests  the Triton interpreter tests (tests/test_triton.py, test_ops.py -k triton, the pinning test).
#   6. report tests/triton_sm90_compile.py --realistic under triton 3.6 (fails on any default spill).
# Writes DIR/summary.md (versions, each part's verdict and time, the kit's steps, compile times and the
# JIT estimate for the device's correctness step) and DIR/compile_report.json; logs stay in the work
# folder (printed). Default DIR: benchmarks/results/device-stack. Exit 0 when every part passed.
# PYTHON: the interpreter the venv is made from (default python3; the GPU machine has 3.12).
# DEVICE_STACK_WORK: the work folder (default /tmp/lcw-device-stack).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT_DIR=benchmarks/results/device-stack
PYTHON=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR=$2; shift 2 ;;
    --python) PYTHON=$2; shift 2 ;;
    *) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
WORK=${DEVICE_STACK_WORK:-/tmp/lcw-device-stack}
VENV=$ROOT/.venv-device
REQS=benchmarks/device_stack_requirements.txt
TREE=$WORK/tree
LOGS=$WORK/logs
mkdir -p "$OUT_DIR" "$LOGS"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
rm -rf "$TREE" "$LOGS"/* "$WORK/kit"
mkdir -p "$TREE"
: >"$LOGS/parts.tsv"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

part() {  # part NAME COMMAND...: runs it in the tree copy, logs to LOGS/NAME.log, records rc and seconds
  local name=$1 t0 rc
  shift
  echo "=== $name: $*"
  t0=$(date +%s%N)
  (cd "$TREE" && "$@") >"$LOGS/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( ($(date +%s%N) - t0) / 1000000 ))" >>"$LOGS/parts.tsv"
  echo "    rc=$rc, $(tail -n 1 "$LOGS/$name.log")"
  return $rc
}

t0=$(date +%s%N)
if ! cmp -s "$REQS" "$VENV/device_stack_requirements.txt"; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" && "$VENV/bin/python" -m pip install -q -r "$REQS" >"$LOGS/venv.log" 2>&1 \
    && cp "$REQS" "$VENV/device_stack_requirements.txt" || { echo "device_stack: venv failed ($LOGS/venv.log)"; exit 1; }
fi
PY=$VENV/bin/python
"$PY" -c "import sys, torch, triton; print('venv: Python', sys.version.split()[0], 'torch', torch.__version__, \
'triton', triton.__version__)" >>"$LOGS/venv.log" 2>&1 || { echo "device_stack: venv broken ($LOGS/venv.log)"; exit 1; }
printf 'venv\t0\t%s\n' "$(( ($(date +%s%N) - t0) / 1000000 ))" >>"$LOGS/parts.tsv"

git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null \
  | tar -xf - -C "$TREE"
export LCW_FAST_GIT_COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo '+dirty')"

FAILED=0
part build env LCW_FAST_REQUIRE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS="$(nproc)" \
  "$PY" -m benchmarks.gpu_check.build --no-link || FAILED=1
part extension "$PY" -c "from lcw_fast import ops; assert ops.has_cuda_kernels(), ops.EXTENSION_ERROR; \
print('extension with CUDA kernels:', ops.has_cuda_kernels())" || FAILED=1
part kit env PYTHON="$PY" bash benchmarks/gpu_check.sh --rehearse --out "$WORK/kit" || FAILED=1
part triton_tests "$PY" -m pytest -q -p no:cacheprovider tests/test_triton.py \
  "tests/test_gpu_check.py::test_correctness_step_pins_every_autotuner_to_one_config" || FAILED=1
part triton_ops "$PY" -m pytest -q -p no:cacheprovider tests/test_ops.py -k triton || FAILED=1
part compile_report "$PY" tests/triton_sm90_compile.py --realistic --json "$OUT_DIR/compile_report.json" || FAILED=1

(cd "$TREE" && "$PY" -m benchmarks.gpu_check.stack_summary --logs "$LOGS" --kit "$WORK/kit" \
  --report "$OUT_DIR/compile_report.json" --out "$OUT_DIR/summary.md") || FAILED=1
echo "device_stack: $([ $FAILED = 0 ] && echo 'every part passed' || echo 'a part FAILED'); summary $OUT_DIR/summary.md, logs $LOGS"
exit $FAILED
