#!/usr/bin/env bash
# Install kwsd as a system service (docs/INSTALL.md, steps 1-5). Run as root from a clone.
#   scripts/install-service.sh [--no-start]
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "install-service.sh: run as root" >&2; exit 1; }
# The service runs as user kwsd: what is installed here must be readable by it, whatever root's
# umask is (a umask of 077 would leave /opt/kwsd readable by root alone).
umask 022

apt-get install -y -q --no-install-recommends python3-venv python3-dev portaudio19-dev gcc
id kwsd >/dev/null 2>&1 || useradd --system --home-dir /var/lib/kwsd --shell /usr/sbin/nologin \
  --user-group kwsd
usermod -a -G audio kwsd
[[ -x /opt/kwsd/bin/python ]] || /usr/bin/python3 -m venv /opt/kwsd
/opt/kwsd/bin/pip install -q "torch==2.13.0"
/opt/kwsd/bin/pip install -q .
install -d -m 0755 /etc/kwsd
[[ -f /etc/kwsd/kwsd.toml ]] || install -m 0640 -g kwsd examples/kwsd.toml /etc/kwsd/kwsd.toml
install -m 0644 systemd/kwsd.service /etc/systemd/system/kwsd.service
# Fail here, naming the path, rather than in the journal when systemd starts kwsd as its user.
scripts/check-service-access.sh --user kwsd --python /opt/kwsd/bin/python \
  --config /etc/kwsd/kwsd.toml
if [[ ${1:-} != --no-start ]] && [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
  systemctl enable --now kwsd
  systemctl --no-pager status kwsd || true
else
  echo "installed; start with: systemctl daemon-reload && systemctl enable --now kwsd"
fi
