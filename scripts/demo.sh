#!/usr/bin/env bash
# The main job: set everything up, then run the daemon with the bundled demo model on the
# default microphone (or, without one, on the bundled demo recording) and print detections.
set -euo pipefail
cd "$(dirname "$0")/.."
KWSD_EXTRAS=${KWSD_EXTRAS:-metrics} ./scripts/install.sh
exec .venv/bin/kwsd demo "$@"
