#!/usr/bin/env bash
# Install system packages (Debian/Ubuntu), a virtual environment in .venv and kwsd into it.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# haproxy: the load balancer of deploy/ (tests/fleet start the real binary).
SYSTEM_PACKAGES=(portaudio19-dev gcc python3-venv pulseaudio pulseaudio-utils libasound2-plugins
                 espeak-ng sox systemd haproxy)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "kwsd: installing system packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch first, pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build).
.venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -e ".[${KWSD_EXTRAS:-dev}]"
