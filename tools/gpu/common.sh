# Shared by tools/gpu/check.sh and tools/gpu/train_burst.sh (source it; bash only).
#
# A lent GPU machine is bare and offline and receives only the working tree (64 MiB at most), so
# what it lacks travels in git-ignored folders of the repo that the device call names in `carry`:
#   .whl/       Python wheels for Python 3.12 x86-64 (tools/gpu/carry.txt, "wheel" lines)
#   .gl/        GL loader .deb files for EGL on the NVIDIA driver ("deb" lines)
#   .gpu_pack/  the training pack of train_burst.sh (training meshes, photos: novel-pose train pack)
#
# On this (CPU) machine:  gpu_prepare_carry   downloads .whl/ and .gl/ (PyPI, Debian)
#                          gpu_dry_run         checks them: --no-index install into an empty target,
#                                              carried size, and that the device commands parse
# On the GPU machine:      gpu_setup           unpacks .gl/, installs .whl/ into /tmp/site, sets
#                                              PYTHONPATH (the repo itself runs uninstalled)

GPU_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GPU_CARRY_LIST="$GPU_REPO/tools/gpu/carry.txt"
GPU_CARRY_LIMIT_MIB=64
# pip's view of the device's interpreter, for downloads and the dry run made here
GPU_PIP_TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp
                --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
                --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64)

gpu_log() { echo "[gpu $(date -u +%H:%M:%S)] $*"; }

gpu_carry_entries() {  # gpu_carry_entries wheel|deb -> the pinned names of that kind
  awk -v kind="$1" '$1 == kind { print $2 }' "$GPU_CARRY_LIST"
}

gpu_prepare_carry() {
  local python="${PYTHON:-python3}" missing=0 entry
  mkdir -p "$GPU_REPO/.whl" "$GPU_REPO/.gl"
  for entry in $(gpu_carry_entries wheel); do
    local name="${entry%%==*}" version="${entry##*==}"
    if ls "$GPU_REPO/.whl/${name//-/_}-${version}-"*.whl >/dev/null 2>&1; then continue; fi
    gpu_log "downloading wheel $entry"
    "$python" -m pip download -q --no-deps "${GPU_PIP_TARGET[@]}" -d "$GPU_REPO/.whl" "$entry" || missing=1
  done
  local lists=/tmp/novel_pose_apt_amd64
  local apt=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
  for entry in $(gpu_carry_entries deb); do
    local name="${entry%%=*}" version="${entry#*=}"
    if ls "$GPU_REPO/.gl/${name}_${version}_"*.deb >/dev/null 2>&1; then continue; fi
    if [ ! -d "$lists/partial" ]; then
      mkdir -p "$lists/partial"
      gpu_log "apt-get update (package lists in $lists)"
      apt-get "${apt[@]}" update -qq || missing=1
    fi
    gpu_log "downloading deb $entry"
    (cd "$GPU_REPO/.gl" && apt-get "${apt[@]}" download "$entry" 2>&1 | grep -v "unsandboxed" || true)
    ls "$GPU_REPO/.gl/${name}_${version}_"*.deb >/dev/null 2>&1 || { echo "ERROR: could not download $entry" >&2; missing=1; }
  done
  return $missing
}

# Size of what a device call sends: tracked + untracked-not-ignored files, plus the carried folders.
gpu_carried_bytes() {
  local tree carried=0 folder
  tree=$(cd "$GPU_REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null \
         | awk '{ s += $1 } END { print s + 0 }')
  for folder in "$@"; do
    [ -e "$GPU_REPO/$folder" ] && carried=$((carried + $(du -sb "$GPU_REPO/$folder" | cut -f1)))
  done
  echo "$tree $carried"
}

gpu_check_carry_size() {  # gpu_check_carry_size FOLDER... : prints the sizes, fails over the limit
  local sizes tree carried total
  sizes=$(gpu_carried_bytes "$@"); tree=${sizes% *}; carried=${sizes#* }; total=$((tree + carried))
  awk -v t="$tree" -v c="$carried" -v what="$*" -v lim="$GPU_CARRY_LIMIT_MIB" 'BEGIN {
    printf "[gpu] working tree %.1f MiB + carried (%s) %.1f MiB = %.1f MiB of %d MiB\n", t / 1048576, what, c / 1048576, (t + c) / 1048576, lim }'
  [ "$total" -le $((GPU_CARRY_LIMIT_MIB * 1048576)) ] || { echo "ERROR: over the device's $GPU_CARRY_LIMIT_MIB MiB" >&2; return 1; }
}

gpu_dry_install() {  # every carried wheel installs from .whl alone (--no-index) into an empty target
  local python="${PYTHON:-python3}" target entry
  target=$(mktemp -d)
  "$python" -m pip install -q --no-index --no-deps --no-compile --target "$target" "${GPU_PIP_TARGET[@]}" \
    "$GPU_REPO"/.whl/*.whl || { rm -rf "$target"; echo "ERROR: the carried wheels do not install with --no-index" >&2; return 1; }
  for entry in $(gpu_carry_entries wheel); do
    local name="${entry%%==*}" version="${entry##*==}"
    ls -d "$target/${name//-/_}-${version}.dist-info" >/dev/null 2>&1 \
      || { rm -rf "$target"; echo "ERROR: $entry missing after the --no-index install" >&2; return 1; }
  done
  for entry in $(gpu_carry_entries deb); do
    local name="${entry%%=*}" version="${entry#*=}"
    dpkg-deb -c "$GPU_REPO/.gl/${name}_${version}_"*.deb >/dev/null || { rm -rf "$target"; return 1; }
  done
  gpu_log "dry install: $(gpu_carry_entries wheel | wc -l) wheels into an empty target with --no-index, $(gpu_carry_entries deb | wc -l) debs readable: ok"
  rm -rf "$target"
}

gpu_setup() {  # on the GPU machine
  local site=/tmp/site f
  if [ -d "$GPU_REPO/.gl" ]; then
    for f in "$GPU_REPO"/.gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$GPU_REPO"/.whl/*.whl \
    || { echo "ERROR: carried wheels did not install (was .whl named in carry?)" >&2; return 1; }
  export PYTHONPATH="$site:$GPU_REPO${PYTHONPATH:+:$PYTHONPATH}"
  # The NVIDIA EGL vendor file, where the driver mount keeps it (the device README's advice)
  if [ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] && [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ]; then
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  fi
  export PYTHONUNBUFFERED=1 NOVEL_POSE_CACHE="${NOVEL_POSE_CACHE:-/tmp/novel_pose_cache}"
  gpu_log "python $(python3 -c 'import sys; print(sys.version.split()[0])'), $(python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")')"
}

# novel-pose without installing the package: "$NOVEL_POSE" ARGS (an executable, so that `timeout` can run it;
# under GPU_DRY_RUN=1 it only parses the command line with novel-pose's own argument parser).
NOVEL_POSE="$GPU_REPO/tools/gpu/novel-pose"
