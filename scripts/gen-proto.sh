#!/usr/bin/env bash
# Generate the Python protobuf/gRPC code of kwsd.v1 from proto/ into daemon/kwsd/api/v1/.
# The one way to regenerate it: `scripts/gen-proto.sh [OUT_DIR]` (OUT_DIR is used by the test
# that checks the committed files are current). Uses grpcio-tools from the project's venv, so
# the generated code matches the pinned grpcio/protobuf versions.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/daemon/kwsd/api/v1}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$PYTHON" -m grpc_tools.protoc -I "$ROOT/proto" \
  --python_out="$TMP" --pyi_out="$TMP" --grpc_python_out="$TMP" \
  "$ROOT/proto/kwsd/v1/kwsd.proto"

mkdir -p "$OUT"
for f in kwsd_pb2.py kwsd_pb2.pyi kwsd_pb2_grpc.py; do
  # protoc writes imports relative to proto/ (`from kwsd.v1 import ...`); the package lives
  # at kwsd.api.v1.
  sed -e 's/^from kwsd\.v1 import /from kwsd.api.v1 import /' "$TMP/kwsd/v1/$f" > "$OUT/$f"
done
