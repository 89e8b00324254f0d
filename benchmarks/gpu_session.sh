#!/usr/bin/env bash
# The GPU half of lcw-fast, run on a device machine (H100) from the repository root:
#
#   bash benchmarks/gpu_session.sh STAGE...        e.g.  build test     then  latent   then  data   ...
#
# Stages, in the order given:
#   build    pip install -e . --no-build-isolation --no-deps (CPU + CUDA kernels, sm_90)
#   test     pytest -m gpu (every GPU-marked test), log in $OUT/pytest-gpu.log
#   latent, data, scale, all
#            python -m benchmarks.run --suite STAGE --time-budget $BENCH_BUDGET_S into
#            benchmarks/results/<device-slug>/, then packs that folder into $OUT/results-<device-slug>.tgz
#            (the device tool returns at most 8 files); builds first if the extension is missing
#   wheels   ON THE DEVELOPER MACHINE, not the device: builds pykeops/keopscore wheels into .whl/
#            (pure Python; the device has no network). Name .whl in the run's `carry` to get KeOps.
#
# Environment:
#   BENCH_BUDGET_S       seconds per sweep stage (default 400: with start-up and the ceilings, a stage
#                        fits one 10-minute device command)
#   BENCH_ARGS           extra arguments for benchmarks.run, e.g. "--providers reference,triton*,cuda*"
#   LCW_FAST_GIT_COMMIT  the commit to record (the device copy has no .git); pass `git rev-parse HEAD`
#   OUT                  the device tool's return folder (set there); logs and the results archive go to it
#   PYTHON               default python3
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-}
export PYTHONUNBUFFERED=1

log() { if [ -n "$OUT" ]; then tee -a "$OUT/$1"; else cat; fi; }

keops_wheels() {
  # Carried KeOps wheels, if any, go to /tmp/site (never into the image's Python).
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
}

build() {
  export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  export MAX_JOBS=${MAX_JOBS:-$(nproc)}
  "$PYTHON" -m pip install -e . --no-build-isolation --no-deps 2>&1 | log build.log
  "$PYTHON" -c "import lcw_fast.ops as o; print('extension:', o.has_extension(), 'cuda kernels:', o.has_cuda_kernels())" | log build.log
}

built() { compgen -G "lcw_fast/_C*.so" >/dev/null; }

gpu_tests() {
  local rc=0
  "$PYTHON" -m pytest -q -m gpu tests 2>&1 | log pytest-gpu.log || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then return "$rc"; fi  # 5: no GPU test collected
}

sweep() {
  built || build
  local slug
  slug=$("$PYTHON" -c "from benchmarks.run import device_name, slug, pick_device; print(slug(device_name(pick_device('auto'))))")
  local rc=0
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of words
  "$PYTHON" -m benchmarks.run --suite "$1" --time-budget "${BENCH_BUDGET_S:-400}" ${BENCH_ARGS:-} 2>&1 \
    | log "sweep-$1.log" || rc=$?
  if [ -n "$OUT" ] && [ -d "benchmarks/results/$slug" ]; then  # what was written comes back, even after a failure
    tar czf "$OUT/results-$slug.tgz" -C benchmarks/results "$slug"
    echo "results: \$OUT/results-$slug.tgz (unpack into benchmarks/results/)"
  fi
  return "$rc"
}

wheels() {
  mkdir -p .whl/src
  "$PYTHON" -m pip download -q --no-deps pykeops==2.3 keopscore==2.3 -d .whl/src
  "$PYTHON" -m pip wheel -q --no-deps -w .whl .whl/src/*.tar.gz
  rm -rf .whl/src
  ls .whl
}

[ $# -gt 0 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2; }
for stage in "$@"; do
  case "$stage" in
    wheels) wheels ;;
    build) nvidia-smi 2>&1 | log build.log || true; keops_wheels; build ;;
    test) keops_wheels; built || build; gpu_tests ;;
    latent|data|scale|all) keops_wheels; sweep "$stage" ;;
    *) echo "unknown stage '$stage' (build, test, latent, data, scale, all, wheels)" >&2; exit 2 ;;
  esac
done
