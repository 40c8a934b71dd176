#!/usr/bin/env bash
# A training burst on a lent GPU machine (issue 19): continue the shipped PicoPose weights for a fixed wall
# time, bring back a float16 checkpoint that a CPU session evaluates and ships (docs/TRAINING.md).
#
#   tools/gpu/train_burst.sh [--minutes M] [--init PATH] [--seed N]   on the GPU machine, through the device tool:
#       run(command="bash tools/gpu/train_burst.sh", carry=[".whl", ".gl", ".gpu_pack"], timeout_s=570)
#   tools/gpu/train_burst.sh --dry-run [--smoke] [--minutes M]        here (CPU): downloads .whl/ and .gl/, builds
#       .gpu_pack when it is missing (novel-pose train pack), installs the wheels with --no-index into an empty
#       target, checks the carried size, that the burst config loads with the pack and the init weights, and that
#       every novel-pose command of the GPU side parses. --smoke also trains 2 CPU steps on a copy of the pack
#       and converts that checkpoint to float16 as the GPU side does (about a minute on 2 cores).
#
# On the GPU: gpu_setup; the renderer must be EGL on the NVIDIA driver (a burst on the CPU rasteriser would make
# almost no pairs); `novel-pose train` with tools/gpu/burst_config.yaml (the shipped weights as init_weights, the
# pack, cuda, batch 32, 14 data workers), stopped by run.max_minutes = M (default 7), then its final checkpoint
# and validation; one `timeout` ends training + validation so the script ends by M + 2 minutes whatever happens;
# then `novel-pose weights half` of the last checkpoint written. $OUT gets, flat:
#   picopose_small_cnn_burst.ckpt  the float16 weights (≤ 16 MiB; loaded as float32): --weights of estimate /
#                                  eval-run, and run.init_weights of a later burst or CPU run (new schedule)
#   burst_train_log.jsonl  burst_config.yaml (the config the run used)  burst_curves.png
#   burst_summary.json     steps, why the run stopped, the final validation AR (tools/gpu/burst_summary.py)
#   burst_console.log      this script's output
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$GPU_REPO"

DRY=0 SMOKE=0 MINUTES=7 SEED=""
INIT=models/picopose_small_cnn/picopose_small_cnn.ckpt
CONFIG=tools/gpu/burst_config.yaml
PACK="$GPU_REPO/.gpu_pack"
BURST_CKPT=picopose_small_cnn_burst.ckpt
MAX_CKPT_MIB=16
POST_RESERVE_S=20  # after training: float16 copy (~3 s), summary and copies, kept out of the timeout
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --smoke) SMOKE=1 ;;
    --minutes) MINUTES=${2:?--minutes needs a value}; shift ;;
    --init) INIT=${2:?--init needs a path}; shift ;;
    --seed) SEED=${2:?--seed needs a value}; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "ERROR: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$MINUTES" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "ERROR: --minutes must be a number, got '$MINUTES'" >&2; exit 2; }
[ -f "$INIT" ] || { echo "ERROR: init weights $INIT not found (give one in the working tree: it travels)" >&2
                    exit 2; }
# Every burst starts at step 0 of a new schedule, and the batches are a function of (seed, step): a seed from the
# start weights gives each new start point new batches, and a rerun from the same weights the same ones.
[ -n "$SEED" ] || SEED=$(( 16#$(sha256sum "$INIT" | cut -c1-7) ))
# The whole script ends by M + 2 minutes: setup (~30 s), the loop's M minutes, the last step, the final checkpoint
# and validation, the float16 copy.
BUDGET_S=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 + 120 }')

bounded() {  # bounded SECONDS COMMAND...: COMMAND (an executable, e.g. $NOVEL_POSE) under timeout -> its exit status
  local limit=$1; shift
  # timeout signals its whole process group: novel-pose and its data workers get SIGINT, then SIGKILL 20 s later
  timeout --signal=INT --kill-after=20 "$limit" "$@"
}

half_copy() {  # half_copy RUN_DIR TARGET: the float16 copy of the run's latest checkpoint, within MAX_CKPT_MIB
  local run=$1 target=$2 weights size
  [ -f "$run/checkpoints/latest.json" ] || { echo "ERROR: no checkpoint in $run/checkpoints" >&2; return 1; }
  weights=$("${PYTHON:-python3}" -c 'import json, sys; print(json.load(open(sys.argv[1]))["weights"])' \
            "$run/checkpoints/latest.json") || return 1
  "$NOVEL_POSE" weights half "$run/checkpoints/$weights" "$target" || return 1
  size=$(stat -c %s "$target")
  gpu_log "float16 checkpoint $target: $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB (from $weights)"
  [ "$size" -le $((MAX_CKPT_MIB * 1048576)) ] || { echo "ERROR: $target is over $MAX_CKPT_MIB MiB" >&2; return 1; }
}

check_config() {  # the burst config with the pack and the init weights: loads, validation objects, strict weights
  "$PYTHON" - "$CONFIG" "$PACK" "$INIT" <<'EOF'
import sys

from novel_pose_ros.training.config import load_train_config
from novel_pose_ros.training.meshes import load_manifest
from novel_pose_ros.training.pack import pack_info, tree_bytes
from novel_pose_ros.training.trainer import Trainer

config_path, pack, init = sys.argv[1:]
config = load_train_config(config_path, {"data": {"meshes_dir": pack}, "run": {"init_weights": init}})
manifest, info = load_manifest(pack), pack_info(pack)
if info is None:
    sys.exit(f"ERROR: {pack} is a full training-mesh folder, not a pack (novel-pose train pack)")
trainer = Trainer(config, show_progress=False)
trainer.load_weights(trainer.build_network(from_weights=True), config.run.init_weights)  # strict
print(f"[gpu] config {config_path}: batch {config.run.batch_size}, {config.run.num_workers} workers, "
      f"{config.run.max_minutes} min; init {init} loads (strict); pack {len(manifest.names('train'))} train + "
      f"{len(manifest.names('validation'))} validation objects, {info['photos']} photos, "
      f"{tree_bytes(manifest.root) / 2 ** 20:.1f} MiB")
EOF
}

if [ "$DRY" = 1 ]; then
  export PYTHON="${PYTHON:-$GPU_REPO/.venv/bin/python}"
  export PATH="$(dirname "$PYTHON"):$PATH"  # "$NOVEL_POSE"'s real runs (the smoke's float16 copy) call python3
  OUT="${OUT:-$GPU_REPO/build/gpu_burst_dry_run}"
  RUN=$(mktemp -d /tmp/novel_pose_burst.XXXX)
  mkdir -p "$OUT"
  if git check-ignore -q "$INIT"; then  # ignored files stay here: only the tree and the carry travel
    echo "ERROR: $INIT is git-ignored, so it would not reach the GPU machine" >&2; exit 1
  fi
  gpu_prepare_carry || exit 1
  if [ ! -f "$PACK/manifest.json" ]; then
    gpu_log "no $PACK: building it from the training-mesh cache (novel-pose train pack)"
    "$PYTHON" -m novel_pose_ros.cli train pack --out "$PACK" --no-progress || exit 1
  fi
  gpu_dry_install || exit 1
  gpu_check_carry_size .whl .gl .gpu_pack || exit 1
  check_config || exit 1
else
  OUT="${OUT:-$GPU_REPO/build/gpu_burst}"
  RUN=/tmp/novel_pose_burst
  rm -rf "$RUN"
  mkdir -p "$OUT" "$RUN"
  exec > >(tee "$OUT/burst_console.log") 2>&1
  [ -f "$PACK/manifest.json" ] || { echo "ERROR: no $PACK (name .gpu_pack in the device call's carry)" >&2; exit 1; }
  gpu_setup || exit 1
  GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  bounded 60 python3 -c 'import sys
from novel_pose_ros.render import create_renderer
renderer = create_renderer("gl")
print(f"[gpu] renderer: {renderer.name}")
sys.exit("llvmpipe" in renderer.name.lower() and "ERROR: EGL renders on the CPU (llvmpipe), not the GPU")' || exit 1
fi

TRAIN=(train --config "$CONFIG" --device cuda --out "$RUN" --meshes "$PACK" --max-minutes "$MINUTES"
       --init-weights "$INIT" --seed "$SEED" --no-progress)
gpu_log "burst: $MINUTES min from $INIT (seed $SEED), budget ${BUDGET_S} s, $SECONDS s used"
if [ "$DRY" = 1 ]; then
  GPU_DRY_RUN=1 "$NOVEL_POSE" "${TRAIN[@]}" || exit 1
  GPU_DRY_RUN=1 "$NOVEL_POSE" weights half "$RUN/checkpoints/step_0000001.ckpt" "$OUT/$BURST_CKPT" || exit 1
  if [ "$SMOKE" = 1 ]; then  # on a copy: the smoke writes stable poses into its meshes folder
    cp -r "$PACK" "$RUN/pack"
    gpu_log "smoke: 2 CPU training steps (batch 2) from $INIT on the pack"
    started=$SECONDS
    "$PYTHON" -m novel_pose_ros.cli train --config "$CONFIG" --device cpu --out "$RUN/smoke" --meshes "$RUN/pack" \
      --steps 2 --batch-size 2 --workers 0 --validation-pairs 2 --no-validation-ar --init-weights "$INIT" \
      --seed "$SEED" --no-progress || exit 1
    gpu_log "smoke: $((SECONDS - started)) s"
    half_copy "$RUN/smoke" "$OUT/$BURST_CKPT" || exit 1
    "$PYTHON" tools/gpu/burst_summary.py "$RUN/smoke" "$OUT/burst_summary.json" "seed=$SEED" "init=$INIT" || exit 1
  fi
  rm -rf "$RUN"
  gpu_log "dry run: carry fits, config and weights load, every command parses; nothing ran on a GPU"
  exit 0
fi

TRAIN_LIMIT_S=$((BUDGET_S - SECONDS - POST_RESERVE_S))
gpu_log "novel-pose ${TRAIN[*]} (ends within ${TRAIN_LIMIT_S} s)"
started=$SECONDS
bounded "$TRAIN_LIMIT_S" "$NOVEL_POSE" "${TRAIN[@]}"
train_rc=$?
gpu_log "training exit $train_rc after $((SECONDS - started)) s (124: the time limit cut it; its last checkpoint stays)"
rc=0
half_copy "$RUN" "$OUT/$BURST_CKPT" || rc=1
cp "$RUN/train_log.jsonl" "$OUT/burst_train_log.jsonl" 2>/dev/null || rc=1
cp "$RUN/config.yaml" "$OUT/burst_config.yaml" 2>/dev/null || rc=1
cp "$RUN/curves.png" "$OUT/burst_curves.png" 2>/dev/null || true
python3 tools/gpu/burst_summary.py "$RUN" "$OUT/burst_summary.json" "seed=$SEED" "init=$INIT" "minutes=$MINUTES" \
  "train_exit=$train_rc" "gpu=$GPU" "script_seconds=$SECONDS" || rc=1
gpu_log "done in $SECONDS s: $(ls "$OUT" | tr '\n' ' ')"
[ "$train_rc" = 0 ] || rc=1
exit $rc
