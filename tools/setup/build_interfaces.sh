#!/usr/bin/env bash
# Build the ROS 2 interface packages that are not on PyPI (tf2_msgs, vision_msgs)
# from interfaces/<pkg>/ into a Python venv, with the rosidl/ament tooling from the
# ros-jazzy-* wheels. See /work/shared/design/ROS2_ON_PIP.md ("Interfaces").
#
# Usage: tools/setup/build_interfaces.sh [VENV_DIR] [PACKAGE ...]
#   VENV_DIR defaults to $VIRTUAL_ENV, else .venv; packages default to "tf2_msgs vision_msgs".
#   A PACKAGE is a name under interfaces/ or the path of an interface package folder elsewhere
#   (install_ros_tools.sh builds the vendored composition_interfaces so; it is read, never written).
# Environment: FORCE=1 rebuilds even when the package already imports.
#              JOBS=N parallel compile jobs (default: nproc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-${VIRTUAL_ENV:-$ROOT/.venv}}"
shift || true
PACKAGES=("$@")
[ ${#PACKAGES[@]} -gt 0 ] || PACKAGES=(tf2_msgs vision_msgs)
VENV="$(cd "$VENV" && pwd)"
PY="$VENV/bin/python"
BUILD_ROOT="$ROOT/build/interfaces"
JOBS="${JOBS:-$(nproc)}"

say()  { printf '[build_interfaces] %s\n' "$*"; }
fail() { printf '[build_interfaces] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || fail "no Python at $PY (create the venv first: make venv)"
command -v cmake >/dev/null || fail "cmake not found (tools/setup/ensure_debian_packages.sh installs it)"
command -v c++ >/dev/null || fail "a C++ compiler is needed (g++)"

# Everything below runs with the venv first on PATH and as the only ament prefix.
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VENV"
export CMAKE_PREFIX_PATH="$VENV"
unset PYTHONPATH || true

# 1. Build-time Python deps (ament/rosidl CMake tooling), pinned.
constraints=()
[ -f "$ROOT/constraints.txt" ] && constraints=(-c "$ROOT/constraints.txt")
say "installing build requirements (requirements-build.txt)"
"$PY" -m pip install --disable-pip-version-check -q -r "$ROOT/requirements-build.txt" "${constraints[@]}" \
  || fail "pip install -r requirements-build.txt failed"

# 2. The wheels' exported CMake files name the wheel builder's Python/NumPy include
#    dirs (/opt/python/cp3XX-cp3XX/...). Point them at this venv's, once, in place.
"$PY" - "$VENV" <<'PYEOF' || fail "could not rewrite the wheels' CMake include paths"
import pathlib, re, sys, sysconfig
import numpy
venv = pathlib.Path(sys.argv[1]).resolve()
py_inc = sysconfig.get_paths()["include"]
np_inc = numpy.get_include()
if not (pathlib.Path(py_inc) / "Python.h").is_file():
    sys.exit(f"Python.h not found in {py_inc}: install the Python headers (python3-dev)")
pat_np = re.compile(r"/opt/python/cp3\d+-cp3\d+t?/lib/python3\.\d+t?/site-packages/numpy/(?:_core/|core/)?include")
pat_py = re.compile(r"/opt/python/cp3\d+-cp3\d+t?/include/python3\.\d+t?")
changed = 0
for path in (venv / "share").glob("**/*.cmake"):
    if not path.resolve().is_relative_to(venv):   # never follow a link out of the venv
        continue
    text = path.read_text(errors="surrogateescape")
    if "/opt/python/" not in text:
        continue
    new = pat_py.sub(py_inc, pat_np.sub(np_inc, text))
    if new != text:
        path.write_text(new, errors="surrogateescape")
        changed += 1
left = [str(p) for p in (venv / "share").glob("**/*.cmake") if "/opt/python/" in p.read_text(errors="ignore")]
if left:
    sys.exit("unrewritten /opt/python paths remain in: " + ", ".join(left[:5]))
print(f"[build_interfaces] include paths: python={py_inc} numpy={np_inc} ({changed} CMake file(s) rewritten)")
PYEOF

# 3. Configure, build, install each package into the venv.
for arg in "${PACKAGES[@]}"; do
  if [[ "$arg" == */* ]]; then src="$(cd "$arg" && pwd)"; pkg="$(basename "$src")"; else src="$ROOT/interfaces/$arg"; pkg="$arg"; fi
  bld="$BUILD_ROOT/$pkg"
  [ -f "$src/CMakeLists.txt" ] || fail "no interface package at $src"
  mod=msg; [ -d "$src/msg" ] || mod=srv   # what to import to see it works (composition_interfaces has only srv/)
  if [ "${FORCE:-0}" != 1 ] && "$PY" -c "import $pkg.$mod" 2>/dev/null; then
    say "$pkg: already importable from $VENV, skipping (FORCE=1 rebuilds)"
    continue
  fi
  mkdir -p "$bld"
  log="$bld/build.log"
  : > "$log"
  start=$(date +%s)
  say "$pkg: configuring (log: ${log#$ROOT/})"
  run() {
    if ! "$@" >>"$log" 2>&1; then
      printf '[build_interfaces] ERROR: %s failed: %s\n--- last 60 lines of %s ---\n' "$pkg" "$*" "$log" >&2
      tail -n 60 "$log" >&2
      exit 1
    fi
  }
  run cmake -S "$src" -B "$bld" \
      -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DCMAKE_PREFIX_PATH="$VENV" \
      -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_TESTING=OFF \
      -DPython3_EXECUTABLE="$PY" \
      -DPYTHON_EXECUTABLE="$PY" \
      -DPython3_FIND_STRATEGY=LOCATION \
      -DPython3_FIND_VIRTUALENV=ONLY
  say "$pkg: building with $JOBS job(s)"
  run cmake --build "$bld" --parallel "$JOBS"
  say "$pkg: installing into $VENV"
  run cmake --install "$bld"
  "$PY" -c "import $pkg.$mod" >>"$log" 2>&1 || { tail -n 30 "$log" >&2; fail "$pkg built but 'import $pkg.$mod' fails"; }
  say "$pkg: done in $(( $(date +%s) - start )) s"
done
say "all interface packages importable: ${PACKAGES[*]##*/}"
