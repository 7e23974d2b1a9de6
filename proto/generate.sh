#!/usr/bin/env bash
# Regenerates the checked-in Python code of proto/otel_sessions/v1/*.proto into
# exporter/otel_sessions/v1/. Pinned: a different grpcio-tools writes different code.
#   bash proto/generate.sh            # uses .venv/bin/python, else python3
# tests/lookups/test_generated.py runs this into a temporary folder and compares.
set -euo pipefail
GRPCIO_TOOLS_VERSION="1.85.1"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
out="${1:-$root/exporter}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi
have="$("$python" -c 'from importlib.metadata import version; print(version("grpcio-tools"))' 2>/dev/null || true)"
if [ "$have" != "$GRPCIO_TOOLS_VERSION" ]; then
  echo "generate.sh: needs grpcio-tools==$GRPCIO_TOOLS_VERSION (found: ${have:-none}); pip install grpcio-tools==$GRPCIO_TOOLS_VERSION" >&2
  exit 2
fi
# opentelemetry/proto/logs/v1/logs.proto is not vendored: its descriptor comes from the
# installed opentelemetry-proto wheel (the module the generated code imports at run time).
descriptors="$(mktemp)"
trap 'rm -f "$descriptors"' EXIT
"$python" - "$descriptors" <<'PY'
import sys

from google.protobuf import descriptor_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

files = descriptor_pb2.FileDescriptorSet()
logs_pb2.DESCRIPTOR.CopyToProto(files.file.add())
with open(sys.argv[1], "wb") as out:
    out.write(files.SerializeToString())
PY
cd "$here"
"$python" -m grpc_tools.protoc -I. --descriptor_set_in="$descriptors" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  otel_sessions/v1/session_service.proto
