#!/usr/bin/env bash
# The prepared GPU check (issue 19): one command on a lent, bare GPU machine, about 6 minutes.
#
#   tools/gpu/check.sh            on the GPU machine, through the device tool, e.g.
#                                   run(command="bash tools/gpu/check.sh", carry=[".whl", ".gl"], timeout_s=540)
#   tools/gpu/check.sh --dry-run  here (CPU): downloads what travels (.whl/, .gl/), installs the wheels into an
#                                 empty target with --no-index, checks the carried size and that every command
#                                 below parses
#
# On the GPU it runs, each step bounded by `timeout` so that one hang cannot eat the lease:
#   1. nvidia-smi, torch/CUDA versions
#   2. pytest -m gpu (the CUDA back-end parity tests; TensorRT's skip: no TensorRT reaches these machines)
#   3. the renderer on EGL with the NVIDIA driver (GL_RENDERER in the log) and the template build time
#   4. novel-pose bench --backend torch --device cuda at 1/4/8 objects, fp32 and autocast fp16/bf16,
#      for small_cnn (shipped weights) and the official ViT-L/14 layout (random weights: speed only)
# and writes to $OUT: gpu_check.log, gpu_check.json (every bench, the template bench, the test summary),
# gpu_tests.xml. tools/gpu/summarise.py prints the table for docs/PERFORMANCE.md from gpu_check.json.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$GPU_REPO"

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
FRAMES=${GPU_CHECK_FRAMES:-8}
WORK=$(mktemp -d /tmp/gpu_check.XXXX)

if [ "$DRY" = 1 ]; then
  export PYTHON="${PYTHON:-$GPU_REPO/.venv/bin/python}" GPU_DRY_RUN=1
  OUT="${OUT:-$GPU_REPO/build/gpu_dry_run}"
  mkdir -p "$OUT"
  gpu_prepare_carry || exit 1
  gpu_dry_install || exit 1
  gpu_check_carry_size .whl .gl || exit 1
  PYTEST=("$PYTHON" -m pytest --collect-only -q -p no:cacheprovider)
else
  OUT="${OUT:-$GPU_REPO/build/gpu}"
  mkdir -p "$OUT"
  exec > >(tee "$OUT/gpu_check.log") 2>&1
  gpu_setup || exit 1
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv || true
  PYTEST=(python3 -m pytest -q -p no:cacheprovider)
fi

step() {  # step SECONDS NAME COMMAND...: run with a time limit, log how it ended, never stop the script
  local limit=$1 name=$2 started rc; shift 2
  gpu_log "step $name (limit ${limit}s): $*"
  started=$(date +%s)
  if [ "$DRY" = 1 ]; then "$@"; rc=$?; else timeout --kill-after=10 "$limit" "$@"; rc=$?; fi
  gpu_log "step $name: exit $rc after $(( $(date +%s) - started )) s"
  echo "$name $rc $(( $(date +%s) - started ))" >> "$WORK/steps.txt"
}

step 150 gpu_tests "${PYTEST[@]}" -m gpu --junitxml="$OUT/gpu_tests.xml" test/runtime
step 60 renderer_egl "$NOVEL_POSE" bench templates --renderer gl --repeat 3 --json "$WORK/templates_gl.json"
for network in small_cnn official; do
  frames=$FRAMES
  [ "$network" = official ] && frames=$(( FRAMES / 2 > 2 ? FRAMES / 2 : 2 ))
  for autocast in off fp16 bf16; do
    step 75 "bench_${network}_${autocast}" "$NOVEL_POSE" --log-level WARNING bench --backend torch --device cuda \
      --network "$network" --torch-autocast "$autocast" --objects-per-frame 1 4 8 --frames "$frames" --warmup 2 \
      --json "$WORK/bench_${network}_${autocast}.json"
  done
done

if [ "$DRY" = 1 ]; then
  gpu_log "dry run: every command parses; nothing ran on a GPU"
else
  python3 "$GPU_REPO/tools/gpu/summarise.py" "$WORK" "$OUT/gpu_check.json"
fi
failed=$(awk '$2 != 0 { print $1 }' "$WORK/steps.txt" | tr '\n' ' ')
rm -rf "$WORK"
[ -z "$failed" ] || { gpu_log "FAILED steps: $failed"; exit 1; }
gpu_log "all steps passed"
