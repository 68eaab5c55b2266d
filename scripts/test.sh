#!/usr/bin/env bash
# The test command: set everything up, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
.venv/bin/ruff check daemon tests
exec .venv/bin/python -m pytest -q "$@"
