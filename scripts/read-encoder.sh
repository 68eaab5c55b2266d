#!/usr/bin/env bash
# Read a demo encoder against issue 15's two open conditions before any calibration
# (docs/TEAM-NOTES.md, sessions 28-31): kwsd-demo-20's head recipe (scripts/train-demo.sh's
# arguments, one fit, `--no-calibrate`) trained through ENCODER on this machine's windows, then
# read on DET curves with `kwsd compare` (fp32, cascade off):
#   gate 1: each synthetic-only keyword on the held-out synthetic test voices (4 compositions)
#           at kwsd-demo-4's false alarms >= kwsd-demo-4's own curve there;
#   gate 2: the WUW five on real held-out callers (compositions c4..c7 of the 8-copy calibration
#           set; the ship build calibrates on c0..c3) and festival's held-out voices, at the shipped
#           model's false alarms, summed >= the shipped model's own sum - 13.
# The synthetic voices are rendered again on every machine and differ, so both baselines are read
# here, on this machine's sets (once; kept in $WORK/gates).
#
#   scripts/read-encoder.sh ENCODER_DIR [NAME]
#
# Needs the corpus (scripts/render-corpus.sh) and the train extra. About an hour on 2 cores the
# first time (sets 15 min, baselines 15 min, hidden states 10 min, fit 7 min, readings 12 min).
set -euo pipefail
cd "$(dirname "$0")/.."
ENCODER=${1:?usage: scripts/read-encoder.sh ENCODER_DIR [NAME]}
NAME=${2:-$(basename "$ENCODER")}
DATA_DIR=${DATA_DIR:-/work/kwsd-data}
WORK=${WORK:-$DATA_DIR/train-work}
SHIPPED=${SHIPPED:-models/demo}           # gate 2's baseline (kwsd-demo-20 when this was written)
DEMO4_COMMIT=${DEMO4_COMMIT:-5bc4512}     # the commit that shipped kwsd-demo-4 (gate 1's baseline)
G=$WORK/gates
KWSD=.venv/bin/kwsd
SYNTH="computer,terminator,grasshopper,bumblebee,blueberry"
WUW="operator,think engine,onword,wildfire,voyager"
mkdir -p "$G"
[[ -f "$ENCODER/config.json" ]] || { echo "read-encoder: no encoder (config.json) in $ENCODER" >&2; exit 2; }
t() { echo "== $(date +%H:%M:%S) $*"; }

# the sets: the 4-copy preparation gives the windows and the test compositions, the 8-copy one
# the calibration set whose compositions c4..c7 no calibration of 4 copies has seen
for copies in 4 8; do
  t "sets ($copies compositions of the calibration set)"
  WORK=$WORK DATA_DIR=$DATA_DIR HELDOUT_COPIES=$copies TEST_COPIES=4 THREADS=2 REAL_DEV=0 \
    EXTRA="--prepare-only --no-progress" scripts/train-demo.sh "$ENCODER" "$G/prepare" \
    > "$G/prepare-$copies.log" 2>&1
done
TEST=$(ls -d "$WORK"/heldout-test-*/ | head -n 1)
SET8=""
for d in "$WORK"/heldout-*/; do
  if [[ $d != *heldout-test-* && -d $d/c7 ]]; then SET8=$d; fi
done
[[ -n "$TEST" && -n "$SET8" ]] || { echo "read-encoder: no test set or 8-copy set in $WORK" >&2; exit 1; }
for c in 4 5 6 7; do
  .venv/bin/python - "$SET8/manifest.csv" "$G/c$c.csv" "c$c/" <<'PY'
import csv, os, sys
src, dst, prefix = sys.argv[1:]
with open(src, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    rows = [r for r in reader if r["file"].startswith(prefix)]
for r in rows:  # paths relative to the new manifest's folder
    r["file"] = os.path.relpath(os.path.join(os.path.dirname(src), r["file"]), os.path.dirname(dst))
with open(dst, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=reader.fieldnames)
    writer.writeheader()
    writer.writerows(rows)
PY
done
VOICES=$WORK/voices-val/manifest.csv   # festival's held-out voices, written by the preparation
[[ -f "$VOICES" ]] || { echo "read-encoder: no $VOICES (train-demo.sh's VAL_VOICES empty?)" >&2; exit 1; }

ev() {  # ev BUNDLE NAME MANIFEST [--sensitivity medium]: once
  [[ -f "$G/$2/summary.json" ]] && return 0
  $KWSD eval --model "$1" --manifest "$3" --out "$G/$2.jsonl" --plots "$G/$2" ${4:-} ${5:-} \
    --cascade off --precision fp32 --no-progress --jobs 2 > "$G/$2.txt" 2>&1
}
WUW_SETS="c4 c5 c6 c7 vv"
manifest() { if [[ $1 == vv ]]; then echo "$VOICES"; else echo "$G/$1.csv"; fi; }
t baselines
if [[ ! -f "$G/demo4/kws.json" ]]; then
  git archive "$DEMO4_COMMIT" models/demo | tar -x -C "$G" && mv "$G/models/demo" "$G/demo4" && rmdir "$G/models"
fi
ev "$G/demo4" base-test "$TEST/manifest.csv" --sensitivity medium
for s in $WUW_SETS; do ev "$SHIPPED" "base-$s" "$(manifest "$s")" --sensitivity medium; done

t "head through $ENCODER"
WORK=$WORK DATA_DIR=$DATA_DIR HELDOUT_COPIES=4 TEST_COPIES=4 THREADS=2 REAL_DEV=0 \
  EXTRA="--no-calibrate --no-progress" scripts/train-demo.sh "$ENCODER" "$G/$NAME" > "$G/$NAME.log" 2>&1
t readings
ev "$G/$NAME" "$NAME-test" "$TEST/manifest.csv"
for s in $WUW_SETS; do ev "$G/$NAME" "$NAME-$s" "$(manifest "$s")"; done

# the two gates, each baseline read on its own curve (kwsd compare B B) as the candidate is
.venv/bin/python - "$G" "$NAME" "$SYNTH" "$WUW" $WUW_SETS <<'PY'
import json, subprocess, sys
g, name, synth, wuw, *sets = sys.argv[1:]
def compare(base, cand, keywords):
    out = subprocess.run([".venv/bin/kwsd", "compare", f"{g}/{base}", f"{g}/{cand}", "--keywords",
                          keywords, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)
own = {k["keyword"]: k["baseline_curve_hits"] for k in compare("base-test", "base-test", synth)["keywords"]}
cand = compare("base-test", f"{name}-test", synth)["keywords"]
print(f"gate 1, held-out synthetic test voices at kwsd-demo-4's false alarms ({name} / kwsd-demo-4):")
met1 = True
for k in cand:
    ok = k["candidate_hits"] >= own[k["keyword"]]
    met1 &= ok
    print(f"  {k['keyword']:12s} {k['candidate_hits']:4d} / {own[k['keyword']]:4d} "
          f"at {k['baseline_false_alarms']} false alarm{'' if k['baseline_false_alarms'] == 1 else 's'}  "
          f"{'met' if ok else 'NOT met'}")
base = sum(compare(f"base-{s}", f"base-{s}", wuw)["all"]["baseline_curve_hits"] for s in sets)
parts = [compare(f"base-{s}", f"{name}-{s}", wuw)["all"]["candidate_hits"] for s in sets]
met2 = sum(parts) >= base - 13
print(f"gate 2, WUW five on {' + '.join(sets)} at the shipped model's false alarms: "
      f"{sum(parts)} ({' + '.join(map(str, parts))}) against {base} - 13 = {base - 13}  "
      f"{'met' if met2 else 'NOT met'}")
print("both met: a candidate for calibration and the ship rule" if met1 and met2 else "not a candidate")
PY
