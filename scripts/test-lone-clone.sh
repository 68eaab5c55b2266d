#!/usr/bin/env bash
# Proves that a clone passes its tests on its own: `git clone` this repository (its HEAD commit)
# into an empty temporary folder, with no ../shared beside it, and run there the suites that read
# real recordings (tests/data) or used to need ../shared. They run on this checkout's .venv with
# the clone's own code first on PYTHONPATH (checked). Any failure or error fails the script;
# the shared_data tests must be skipped, not errors. CI (.ci/run) runs it after the main suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-$REPO/.venv/bin/python}
[[ -x $PY ]] || { echo "test-lone-clone: no $PY: run ./scripts/install.sh first" >&2; exit 2; }

SUITES=(
  tests/test_data.py
  tests/test_audio_convert.py
  tests/reliability/test_bad_files.py
  tests/api/test_unix_api.py
  tests/api/test_demo_model.py
  tests/head_training/test_train_eval.py
)

TMP=$(realpath "$(mktemp -d "${TMPDIR:-/tmp}/kwsd-lone.XXXXXX")")
trap 'rm -rf "$TMP"' EXIT
git -c advice.detachedHead=false clone -q --no-hardlinks "$REPO" "$TMP/kwsd"  # HEAD, detached or not
cd "$TMP/kwsd"
echo "test-lone-clone: $(git log -1 --format='%h %s' | cut -c1-90)"
echo "test-lone-clone: in $TMP/kwsd, beside it: $(ls -A "$TMP" | tr '\n' ' ')"
[[ ! -e ../shared ]] || { echo "test-lone-clone: ../shared exists beside the clone" >&2; exit 1; }

export PYTHONPATH=$TMP/kwsd/daemon
unset KWSD_SHARED_DATA
where=$("$PY" -c 'import kwsd, os; print(os.path.realpath(kwsd.__file__))')
if [[ $where != "$TMP/kwsd/daemon/"* ]]; then
  echo "test-lone-clone: the clone imports $where, not its own kwsd" >&2
  exit 1
fi
echo "test-lone-clone: kwsd from $where"

# every test module must at least import in a lone clone
"$PY" -m pytest -q -p no:cacheprovider --collect-only >/dev/null || {
  "$PY" -m pytest -q -p no:cacheprovider --collect-only | tail -30; exit 1; }
"$PY" -m pytest -q -p no:cacheprovider -rs "${SUITES[@]}" "$@"
