#!/usr/bin/env bash
# The one command a session with a GPU runs, from the repository root, with nothing carried but the tree:
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--rehearse] [--steps a,b,...] [--budget STEP=S|STEP=@T ...]
#
# Steps, in order of value, each under its own hard `timeout` (seconds; 515 in all, under 9 minutes, which
# leaves room in one device command of 10 minutes). Measured on the H200 (2026-12-04, commit 3535677; files
# in benchmarks/results/nvidia-h200/): build 33 s, ceilings 5, correctness 102, sanitizer 44 (racecheck cut
# off at 16 s), benchmarks 94, training over 30 (killed while probing `auto`). A step that fails or runs out of time is recorded and
# the next runs. Budgets from benchmarks/device_stack.sh (triton 3.6, nvcc 13.0, on 2 CPU cores): the CUDA
# build's longest object compiles in about 18 s (49 s for all on 2 cores; the device has 16); Triton
# compiles one kernel specialisation in 0.4-1.5 s, and the pinned correctness pass needs at least 35 s of
# them, up to three times that as launches specialise on n and m (1, odd, a multiple of 16).
#   build         75  the extension in place for sm_90 (benchmarks/gpu_check/build.py: pip install -e where
#                     the machine's setuptools/wheel can build it, else setup.py build_ext --inplace; the path
#                     and why in meta.json), MAX_JOBS = cores, LCW_FAST_REQUIRE_CUDA=1 (fails without nvcc or
#                     CUDA kernels); GPU, driver, versions, commit (LCW_FAST_GIT_COMMIT: the device copy has
#                     no .git) into meta.json
#   ceilings      15  fp32 / tf32 / bf16 torch.matmul TFLOP/s and device copy GB/s
#   correctness  170  every op of the Triton and CUDA backends, values and gradients, against the float64
#                     blocked reference: D in {2,3,64,128,256,257,784,12288}, n = 1, odd n != m, strided
#                     inputs, float32/bfloat16/float16/float64, precision default and fast, LCW_FAST_POISON=1,
#                     each op called twice (bit-equal); the public API's accuracy at the headline sizes
#                     (benchmarks/gpu_check/correctness.py, accuracy.py). Every autotuned kernel is pinned
#                     to its table's first config for the launch, never timed (row "autotune pinning").
#                     Triton JIT compiles dominate the GPU steps' time.
#   sanitizer     90  compute-sanitizer memcheck, initcheck, racecheck on tests/gpu_sanitizer.py (memcheck
#                     16 s, initcheck 12 s; racecheck, the slowest, last with what is left)
#   benchmarks   100  headline sizes: fwd, bwd, fwd+bwd of reference, triton, cuda (and keops)
#   training      60  CelebA-architecture cw2 steps: images/s and peak memory at batch 256, largest batch
#                     in 30 GB, for the reference loss and `auto`
#   summary        5  summary.md; from a git checkout (not a rehearsal) also copies the files to
#                     benchmarks/results/<device-slug>/gpu-check/
# Not in the default run, named with --steps (e.g. `--steps build,study`, 560 s in all; the
# device's one-call plan below):
#   study        480  the batch study's batch-4,000 cells (training.batch_study, issue 17) on the GPU, as many
#                     as fit, 4 at a time, parts a and b seed by seed first, continuing a cut-off cell in the
#                     next call on a warm machine (benchmarks/gpu_check/study.py); their raw results and
#                     samples in batch-study-raw.tgz. Carry .whl (mlxtend, clean-fid wheels: the device has neither)
#                     and data/features (study.py)
# --steps: steps in order; `bg:STEP` starts STEP in the background and goes on with the next, `wait` waits for
#   every background step (the end waits too). The device's one-call plan trains the study beside the steps
#   that time nothing, after the timed ones, on a GPU it then shares:
#     --steps build,ceilings,benchmarks,training,bg:study,correctness,sanitizer,wait --budget study=@540
# --budget STEP=S: that step's budget in seconds instead of the one above; STEP=@T: until T seconds after the
#   kit started (whatever the earlier steps left).
# --rehearse: the same steps at tiny sizes on a machine without a GPU (CUDA hidden, Triton under
#   TRITON_INTERPRET=1, the C++ CPU kernels standing in for lcw_fast::'s CUDA ones, the reference on the
#   CPU; no compile, no sanitizer), writing the same files; about 2.5 minutes on 2 cores. Budgets are
#   doubled (a small shared CPU starts Python and torch slowly). CI runs it (tests/test_gpu_check.py).
# --out DIR: where the files go (default $OUT, the device tool's return folder). --steps: a subset.
# Exit status: 0 when every step is ok or skipped, 1 when one failed or timed out (every step runs anyway).
# PYTHON: the interpreter (default python3). KeOps: pykeops/keopscore wheels in .whl/ (carried; the device
#   has no network) are installed into /tmp and benchmarked; make them on a networked machine with
#   `pip download --no-deps pykeops==2.3 keopscore==2.3 -d .whl/src && pip wheel --no-deps -w .whl .whl/src/*`.
#
# Files in DIR (6, 8 with the study; the device tool returns at most 8): results.jsonl, summary.md, meta.json,
# build.log, run.log (ceilings, correctness, benchmarks, training, summary), sanitizer.log (and study.log,
# batch-study-raw.tgz).
#
# results.jsonl: one JSON object a line, appended and fsync'd the moment it is measured (a kill loses
# nothing written before it). Every row: "step", "name", "status" (ok | failed | skipped | timeout),
# "time" (UTC), "reason" where not ok, plus its numbers:
#   step "<s>", name "step"   the step's verdict: rc, seconds, budget_s, reason, log_tail (when not ok)
#   build        "build": rc, seconds, cuda_kernels; "machine": device, device_slug, driver, torch, triton,
#                cuda, python, cores, git_commit, sm_count, memory_bytes
#   ceilings     "ceilings": fp32_tflops, tf32_tflops, bf16_tflops, copy_gbps, matmul_size, copy_bytes
#   correctness  "<backend>.<op> n=.. m=.. D=.. <dtype> <precision> <layout>": value_rel_err, grad_rel_l2,
#                value_rtol, grad_rel_l2_tol, bit_equal, seconds, backend, op, n, m, D, dtype, precision, layout
#   sanitizer    "memcheck" | "racecheck" | "initcheck" ("workload" in a rehearsal): errors, rc, seconds, env
#   benchmarks   "<workload> <provider> n=.. D=.. <pass>": median_ms, q20_ms, q80_ms, min_ms, max_ms,
#                times_ms, warmup_ms, peak_mem_bytes, extra_mem_bytes, flops, bytes, tflops, roofline_fraction,
#                speedup_vs_reference, provider, mode, dtype, n, m, D; "provider <p>": why it did not run
#   training     "batch <B> <backend>": images_per_s, median_ms, min_ms, max_ms, peak_memory_bytes, loss,
#                images (CxHxW);
#                "probe <B> <backend>": fits, oom, peak_memory_bytes; "largest batch <backend>": largest_batch,
#                first_failing_batch, budget_bytes
#   study        "cell <name>": fid, kid, heldout_metric, seconds_per_step, train_seconds, wall_seconds, device,
#                command (skipped: the reason)
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT_DIR=${OUT:-}
REHEARSE=()
BUDGET_SCALE=1
FAILED=0
STEPS=build,ceilings,correctness,sanitizer,benchmarks,training
declare -A BUDGET=([build]=75 [ceilings]=15 [correctness]=170 [sanitizer]=90 [benchmarks]=100 [training]=60
                   [study]=480 [summary]=5)
declare -A LOG=([build]=build.log [sanitizer]=sanitizer.log [study]=study.log)
known() { [ -n "${BUDGET[$1]+x}" ] || { echo "gpu_check.sh: unknown step '$1'" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR=$2; shift 2 ;;
    --rehearse) REHEARSE=(--rehearse); BUDGET_SCALE=2; shift ;;
    --steps) STEPS=$2; shift 2 ;;
    --budget) known "${2%%=*}"; BUDGET[${2%%=*}]=${2#*=}; shift 2 ;;
    *) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
for s in ${STEPS//,/ }; do [ "$s" = wait ] || known "${s#bg:}"; done
[ -n "$OUT_DIR" ] || { echo "gpu_check.sh: give --out DIR or set OUT" >&2; exit 2; }
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if [ ${#REHEARSE[@]} -gt 0 ]; then
  export TRITON_INTERPRET=1 CUDA_VISIBLE_DEVICES=""
elif compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/lcw-keops .whl/*.whl \
    >>"$OUT_DIR/build.log" 2>&1 && export PYTHONPATH=/tmp/lcw-keops${PYTHONPATH:+:$PYTHONPATH}
fi

step() {  # step NAME: runs the step's module under a hard timeout, records its verdict; 1 when not ok
  local name=$1 budget=${BUDGET[$1]} log=$OUT_DIR/${LOG[$1]:-run.log} offset t0 rc
  case "$budget" in @*) budget=$(( ${budget#@} - SECONDS )); [ "$budget" -ge 1 ] || budget=1 ;;
                    *) budget=$(( budget * BUDGET_SCALE )) ;; esac
  offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
  echo "=== $name (budget ${budget} s) $(date -u +%FT%TZ)" >>"$log"
  t0=$(date +%s%N)
  timeout -k 5 "$budget" "$PYTHON" -m benchmarks.gpu_check "$name" --out "$OUT_DIR" --budget "$budget" \
    ${REHEARSE[@]+"${REHEARSE[@]}"} >>"$log" 2>&1
  rc=$?
  "$PYTHON" -m benchmarks.gpu_check end "$name" --out "$OUT_DIR" --budget "$budget" --rc "$rc" \
    --seconds "$(( ($(date +%s%N) - t0) / 1000000 ))e-3" --log "$log" --offset "$offset" | tee -a "$log"
}

BACKGROUND=()
wait_background() { for p in ${BACKGROUND[@]+"${BACKGROUND[@]}"}; do wait "$p" || FAILED=1; done; BACKGROUND=(); }
for s in ${STEPS//,/ }; do
  case "$s" in
    wait) wait_background ;;
    bg:*) step "${s#bg:}" & BACKGROUND+=($!) ;;
    *) step "$s" || FAILED=1 ;;
  esac
done
wait_background
step summary || FAILED=1
exit "$FAILED"
