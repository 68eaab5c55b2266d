#!/usr/bin/env bash
# On a GPU machine: teacher targets and distillation of the demo encoder from a folder packed by
# scripts/distill-gpu/pack.py; the encoder comes back in $OUT (the model file split in 9 MB
# parts: join them with `cat model.safetensors.part-* > model.safetensors`).
#
#   OUT=/some/folder [BUDGET_S=560] [BATCH=64] [LR=5e-4] [INIT=models/demo] \
#       scripts/distill-gpu/run.sh [PACK=.gpu-distill]
#
# BUDGET_S is the whole script's wall time: whatever the teacher cache leaves of it (less 45 s
# for the export) is the distillation's --max-minutes, over which the learning rate decays.
# STEPS=N instead: a fixed number of steps (the decay follows the steps), resumable: how
# scripts/make-demo-model.sh repeats a GPU run on the CPU (DEVICE=cpu) when no encoder made on
# a GPU is given. The build never needs a GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
PACK=${1:-.gpu-distill}
: "${OUT:?set OUT to the folder for the results}"
BUDGET_S=${BUDGET_S:-560}
BATCH=${BATCH:-64}
LR=${LR:-5e-4}
INIT=${INIT:-models/demo}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-$(($(nproc) - 2))}
WORK=${WORK:-/tmp/kwsd-distill-gpu}
PY=${PY:-python3}
mkdir -p "$OUT" "$WORK"
t0=$SECONDS
log() { echo "[distill-gpu $((SECONDS - t0)) s] $*" | tee -a "$OUT/run.log"; }

if ! $PY -c "import soundfile, soxr" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" \
    "$PACK"/wheels/*.whl
  export PYTHONPATH="$WORK/site"
fi
export PYTHONPATH="daemon${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 KWSD_PROGRESS=0
export KWSD_RIR_BANK="$PACK/rirs.npz"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader \
  | tee -a "$OUT/run.log"
log "teacher cache"
$PY -m kwsd distill cache --audio "$PACK/audio" --cache "$WORK/cache" \
  --teacher-weights "$PACK/teacher.safetensors" --device "$DEVICE" --batch-windows 16 \
  --threads "$(nproc)" ${LIMIT:+--limit "$LIMIT"} 2>&1 | grep -v "^$" | tail -n 5 | tee -a "$OUT/run.log"
if [[ -n "${STEPS:-}" ]]; then
  length=(--steps "$STEPS"); what="$STEPS steps"
else
  minutes=$(awk -v left=$((BUDGET_S - (SECONDS - t0) - 45)) 'BEGIN {printf "%.2f", left / 60}')
  length=(--steps 1000000 --max-minutes "$minutes"); what="$minutes min"
fi
RESUME=(); [[ -f "$WORK/run/last.pt" ]] && RESUME=(--resume)
log "distillation: $what, batch $BATCH, lr $LR, $WORKERS workers, from $INIT"
$PY -m kwsd distill train --cache "$WORK/cache" --run "$WORK/run" --init "$INIT" --config "$INIT/config.json" \
  --device "$DEVICE" --workers "$WORKERS" --batch-size "$BATCH" --lr "$LR" --warmup 300 \
  "${length[@]}" "${RESUME[@]}" --save-every 1000 --val-every 250 \
  >>"$OUT/run.log" 2>&1 || log "distillation stopped with an error (see above); exporting its last checkpoint"
$PY -m kwsd distill export --run "$WORK/run" --out "$WORK/encoder" >>"$OUT/run.log" 2>&1
cp "$WORK/encoder/config.json" "$WORK/encoder/distillation.json" "$WORK/run/loss.jsonl" "$OUT/"
cp "$WORK/encoder/distill-loss.png" "$OUT/" 2>/dev/null || true
split -b 9000000 -d "$WORK/encoder/model.safetensors" "$OUT/model.safetensors.part-"
log "done: $(grep -c '"val_wave_cos"' "$OUT/loss.jsonl") validations; last: $(grep '"val_wave_cos"' "$OUT/loss.jsonl" | tail -n 1)"
