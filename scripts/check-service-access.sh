#!/usr/bin/env bash
# Can the service's user read everything the service needs? Run as root; install-service.sh runs
# it before starting kwsd. A clone in a private home (mode 0700), a venv made from an interpreter
# under /root (pyenv), an editable install pointing into such a clone, files created under a
# umask of 077, or a model under /home (which the system unit hides with ProtectHome=yes) all let
# the install succeed as root and then fail when systemd starts kwsd as its own user. This says
# which path is the problem instead.
#   scripts/check-service-access.sh [--user kwsd] [--python /opt/kwsd/bin/python]
#                                   [--config /etc/kwsd/kwsd.toml]
set -euo pipefail
user=kwsd python=/opt/kwsd/bin/python config=/etc/kwsd/kwsd.toml
while [[ $# -gt 0 ]]; do
  case $1 in
    --user) user=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    *) echo "usage: $0 [--user U] [--python PATH] [--config PATH]" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "check-service-access.sh: run as root" >&2; exit 1; }
id "$user" >/dev/null 2>&1 || { echo "check-service-access.sh: no user $user" >&2; exit 1; }

as_user() { setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@"; }

# The first component of PATH that $user cannot search (a directory) or use (the file itself,
# tested with TEST: -r to read, -x to run).
blocked() {
  local path=$1 test=$2 part="" comp
  IFS=/ read -ra comps <<<"${path#/}"
  for comp in "${comps[@]}"; do
    part="$part/$comp"
    if [[ -d $part && ! -L $part ]]; then
      as_user test -x "$part" || { echo "$part (directory, mode $(stat -c %a "$part"))"; return; }
    fi
  done
  as_user test "$test" "$path" || echo "$path (mode $(stat -Lc %a "$path" 2>/dev/null || echo '?'))"
}

problems=0
problem() { echo "check-service-access.sh: $*" >&2; problems=$((problems + 1)); }

for path in "$(readlink -f "$python")" "$python"; do  # the real file first: it names the cause
  where=$(blocked "$path" -x)
  if [[ -n $where ]]; then
    problem "user $user cannot run the interpreter $path: blocked at $where"
    echo "  fix: make the venv from an interpreter every user can run (/usr/bin/python3 -m" \
      "venv) in a directory every user can enter (/opt/kwsd)" >&2
    exit 1
  fi
done

# Import what the service imports and read what it reads, as the user: a venv file, an editable
# install's source folder or a model file it cannot read is named here.
report=$(cd / && as_user env -i PATH=/usr/bin:/bin HOME=/ "$python" -I - "$config" 2>&1 <<'EOF'
import os, sys
config = sys.argv[1]
try:
    import grpc, torch  # noqa: F401
    import kwsd.cli  # noqa: F401
    from kwsd.config import load_config
except Exception as exc:
    print(f"cannot import what kwsd needs: {type(exc).__name__}: {exc}")
    sys.exit(1)
if not os.access(config, os.R_OK):
    print(f"cannot read the configuration {config}")
    sys.exit(1)
try:
    model = load_config(config).model_path()
except Exception as exc:
    print(f"the configuration {config} does not load: {exc}")
    sys.exit(1)
model = model.resolve()
bad = [str(p) for p in [model, *model.glob("*")] if not os.access(p, os.R_OK)]
if not model.is_dir() or bad:
    print(f"cannot read the model {model}: {', '.join(bad) or 'not a folder'}")
    sys.exit(1)
if model.parts[1:2] in (("home",), ("root",)) or str(model).startswith("/run/user/"):
    print(f"the model {model} is under /home, /root or /run/user, which the system unit hides "
          "(ProtectHome=yes): copy it under /opt/kwsd or /var/lib/kwsd")
    sys.exit(1)
print(f"ok: {sys.executable} imports kwsd from {os.path.dirname(kwsd.cli.__file__)}; "
      f"model {model}")
EOF
) || problem "user $user: $report"
if [[ $problems -gt 0 ]]; then
  echo "  (paths: interpreter $python, configuration $config; installing with 'umask 022'" \
    "from a clone any user can read avoids most of these)" >&2
  exit 1
fi
echo "check-service-access.sh: $report"
