#!/usr/bin/env bash
# Install the Debian packages named on the command line that are not installed yet.
# Checks each with `dpkg -s`; runs apt-get (with sudo when not root) only for the
# missing ones, so it is a no-op (and needs no network) on a machine that has them.
#
# Usage: tools/setup/ensure_debian_packages.sh PACKAGE [PACKAGE ...]
# When the python3 that will create the venv is Debian's own (/usr/bin/python3),
# python3-venv and python3-dev are added: Debian splits venv/ensurepip and the
# headers (needed by the interface build) out of the interpreter package.
set -euo pipefail

say() { printf '[debian] %s\n' "$*"; }

if ! command -v dpkg >/dev/null 2>&1; then
  say "dpkg not found: not a Debian system, skipping the package check ($*)"
  exit 0
fi

wanted=("$@")
python="${PYTHON:-python3}"
if [ "$(readlink -f "$(command -v "$python" 2>/dev/null || echo /nonexistent)")" = "$(readlink -f /usr/bin/python3 2>/dev/null || echo /none)" ]; then
  wanted+=(python3-venv python3-dev)
fi

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1 || ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  say "all present: ${wanted[*]}"
  exit 0
fi

say "installing missing packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  say "ERROR: not root and no sudo; install these by hand: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
