#!/usr/bin/env bash
# Install the ROS 2 user tools that PyPI lacks (launch, launch_ros, the `ros2` command and its verbs,
# composition_interfaces) plus colcon into a venv, for the launch tests
# (test/ros/test_launch_graph.py). Sources: the unchanged upstream Jazzy trees in
# ../shared/vendor/ros2_jazzy_python (its README says what was checked); they are built from a
# temporary copy (the shared folder may be read-only) and never copied into this project.
#
# Usage: tools/setup/install_ros_tools.sh [VENV_DIR]     (make venv-ros-tools)
#   Does nothing (one line saying so) without the vendor folder, or when a system ROS 2 already
#   provides launch_ros and ros2cli to this venv's Python. Idempotent: $VENV/.stamp-ros-tools
#   holds a hash of the inputs; FORCE=1 reinstalls.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$(cd "${1:-${VIRTUAL_ENV:-$ROOT/.venv}}" && pwd)"
PY="$VENV/bin/python"
VENDOR="${ROS_TOOLS_VENDOR:-$ROOT/../shared/vendor/ros2_jazzy_python}"
STAMP="$VENV/.stamp-ros-tools"
# The Python packages of the vendor folder, in dependency order (README there lists them). Not
# launch_testing / launch_testing_ros: their pytest11 plugin declares a hook argument (`path`) that
# pytest 9 removed, so once installed every pytest run fails to start; our launch tests use
# `ros2 launch` itself.
VENDOR_PACKAGES=(rosidl_runtime_py launch launch_xml launch_yaml launch_ros ros2cli ros2pkg ros2node ros2service
                 ros2topic ros2param ros2run ros2lifecycle ros2launch)
NOT_WANTED=(launch_testing_ros launch_testing)
CHECK_IMPORTS="import launch, launch_ros, ros2cli, ros2launch, ros2lifecycle, ros2param, ros2topic, composition_interfaces.srv"

say()  { printf '[ros-tools] %s\n' "$*"; }
fail() { printf '[ros-tools] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || fail "no Python at $PY (create the venv first: make venv)"
if [ ! -d "$VENDOR" ]; then
  say "no ${VENDOR#$ROOT/} (../shared/vendor absent): ros2 launch / ros2 CLI not installed, launch tests will skip"
  exit 0
fi
VENDOR="$(cd "$VENDOR" && pwd)"

# A sourced ROS 2 (robots, ROS CI images) puts its launch_ros/ros2cli on PYTHONPATH: use those.
where="$("$PY" -c 'import launch_ros, ros2cli; print(ros2cli.__file__)' 2>/dev/null || true)"
if [ -n "$where" ] && [[ "$where" != "$VENV"/* ]]; then
  say "launch_ros and ros2cli come from a system ROS 2 (${where%/ros2cli/*}): nothing to install"
  exit 0
fi

want="$(cat "$ROOT/requirements-ros-tools.txt" "$ROOT/constraints.txt" "${BASH_SOURCE[0]}" \
             "$ROOT/tools/setup/build_interfaces.sh" "$VENDOR/ORIGIN" | sha256sum | cut -d' ' -f1)"
if [ "${FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/ros2" ] \
   && [ -x "$VENV/bin/colcon" ] && "$PY" -c "$CHECK_IMPORTS" 2>/dev/null; then
  say "up to date (ros2, colcon, launch in $VENV)"
  exit 0
fi
start=$(date +%s)
pip=("$PY" -m pip --disable-pip-version-check)

say "installing requirements-ros-tools.txt (pinned, -c constraints.txt)"
"${pip[@]}" install -q -r "$ROOT/requirements-ros-tools.txt" -c "$ROOT/constraints.txt" \
  || fail "pip install -r requirements-ros-tools.txt failed"

# launch_ros imports composition_interfaces.srv: generate it like our tf2_msgs (same script).
bash "$ROOT/tools/setup/build_interfaces.sh" "$VENV" "$VENDOR/composition_interfaces"

# Build from a temporary copy: setuptools writes build/ and *.egg-info next to setup.py, and
# stale ones left in the vendor folder must not leak into this install.
work="$(mktemp -d "${TMPDIR:-/tmp}/ros-tools.XXXXXX")"
trap 'rm -rf "$work"' EXIT
dirs=()
for pkg in "${VENDOR_PACKAGES[@]}"; do
  [ -f "$VENDOR/$pkg/setup.py" ] || fail "$VENDOR/$pkg/setup.py missing (vendor folder incomplete?)"
  cp -r "$VENDOR/$pkg" "$work/$pkg"
  chmod -R u+w "$work/$pkg"
  rm -rf "$work/$pkg/build" "$work/$pkg"/*.egg-info
  dirs+=("$work/$pkg")
done
say "installing ${#dirs[@]} vendored Jazzy packages (--no-deps): ${VENDOR_PACKAGES[*]}"
"${pip[@]}" install -q --no-deps --no-build-isolation "${dirs[@]}" || fail "pip install of the vendored packages failed"
for pkg in "${NOT_WANTED[@]}"; do   # left by an earlier version of this script
  if "${pip[@]}" show -q "$pkg" >/dev/null 2>&1; then say "removing $pkg (its pytest plugin breaks pytest 9)"; "${pip[@]}" uninstall -q -y "$pkg"; fi
done

"$PY" -c "$CHECK_IMPORTS" || fail "installed, but the imports fail: $CHECK_IMPORTS"
[ -x "$VENV/bin/ros2" ] || fail "no $VENV/bin/ros2 after the install"
[ -x "$VENV/bin/colcon" ] || fail "no $VENV/bin/colcon after the install"
echo "$want" > "$STAMP"
say "ready in $(( $(date +%s) - start )) s: $VENV/bin/ros2 ($(AMENT_PREFIX_PATH="$VENV" "$VENV/bin/ros2" pkg prefix ros2cli)), $VENV/bin/colcon"
