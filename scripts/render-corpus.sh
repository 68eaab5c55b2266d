#!/usr/bin/env bash
# Render the synthetic keyword corpus and the encoder-distillation audio (issue 7) in two lanes
# (2 cores): lane A = keyword corpus with the fast engines and festival; lane B = distillation
# audio from those engines, then the keyword corpus with Kokoro (slow: ~1-4 s per phrase here),
# then Kokoro distillation audio (fewer minutes per speaker). Resumable: rerun to continue.
# Usage: scripts/render-corpus.sh [DATA_DIR=/work/kwsd-data]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-/work/kwsd-data}
mkdir -p "$DATA/logs" "$DATA/corpus" "$DATA/distill-audio"
export PYTHONPATH=daemon KWSD_TTS_THREADS=1
PY=".venv/bin/python -m kwsd.corpus.render"
( nice -n 10 $PY --out "$DATA/corpus" --jobs 1 \
    --engines noise,mbrola,flite,pico,espeak,piper,festival ) >>"$DATA/logs/corpus-A.log" 2>&1 &
A=$!
( nice -n 10 $PY --set distill --out "$DATA/distill-audio" --jobs 1 \
    --engines mbrola,flite,pico,espeak,piper,festival \
  && nice -n 10 $PY --out "$DATA/corpus" --jobs 1 --engines kokoro \
  && nice -n 10 $PY --set distill --out "$DATA/distill-audio" --jobs 1 --engines kokoro \
    --distill-minutes "${KOKORO_DISTILL_MINUTES:-2}" ) >>"$DATA/logs/corpus-B.log" 2>&1 &
B=$!
echo "lanes: A=$A B=$B (logs in $DATA/logs/corpus-A.log, corpus-B.log)"
wait $A; wait $B
# final manifests list every clip on disk (both lanes wrote into corpus/)
PYTHONPATH=daemon .venv/bin/python - "$DATA" <<'PYEOF'
import sys
from pathlib import Path
from kwsd.corpus.render import summarize, write_manifest
for name in ("corpus", "distill-audio"):
    rows = write_manifest(Path(sys.argv[1]) / name)
    print(f"{name}: {summarize(rows)}")
PYEOF
