#!/usr/bin/env bash
# Runs client/examples/classify.py against a running fer-server, generating its
# Python stubs into a temporary folder first (grpc_tools when installed, else
# protoc with Debian's grpc_python_plugin), exactly as docs/client.md says.
# Usage: python_example.sh SOURCE_DIR TARGET IMAGE...
# Exits 77 (skip) when python3's grpc or protobuf, or every stub generator, is
# missing; otherwise with the example's status.
set -euo pipefail
src=${1:?usage: $0 SOURCE_DIR TARGET IMAGE...}
target=${2:?usage: $0 SOURCE_DIR TARGET IMAGE...}
shift 2

# The first python3 that has grpc and protobuf: the one on PATH (a virtualenv,
# pyenv) or Debian's, where python3-grpcio and python3-protobuf install.
python=
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import grpc, google.protobuf' 2>/dev/null; then python=$candidate; break; fi
done
if [ -z "$python" ]; then
  echo "SKIP: no python3 can import grpc and google.protobuf (python3-grpcio, python3-protobuf)"
  exit 77
fi
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
proto="$src/proto/fer/v1/expression.proto"
if "$python" -c 'import grpc_tools' 2>/dev/null; then
  "$python" -m grpc_tools.protoc -I "$src/proto" --python_out="$gen" --grpc_python_out="$gen" "$proto"
elif command -v protoc >/dev/null 2>&1 && command -v grpc_python_plugin >/dev/null 2>&1; then
  protoc -I "$src/proto" --python_out="$gen" --grpc_out="$gen" \
    --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" "$proto"
else
  echo "SKIP: neither grpc_tools nor protoc with grpc_python_plugin is installed"
  exit 77
fi
PYTHONPATH="$gen" "$python" "$src/client/examples/classify.py" --target="$target" "$@"
