#!/usr/bin/env bash
# Runs client/examples/classify.py against a running fer-server, generating its
# Python stubs into a temporary folder first, exactly as docs/client.md says.
# Usage: python_example.sh SOURCE_DIR TARGET IMAGE...
# FER_STUBS picks how the stubs are made:
#   grpc_tools  python3 -m grpc_tools.protoc (pip's grpcio-tools, or Debian's
#               python3-grpc-tools for /usr/bin/python3)
#   protoc      protoc with Debian's grpc_python_plugin (protobuf-compiler-grpc)
#   unset       grpc_tools when the interpreter has it, else protoc
# Exits 77 (skip) when python3's grpc or protobuf, or the stub generator asked
# for, is missing; otherwise with the example's status. Says on stderr which
# interpreter and generator it used.
set -euo pipefail
src=${1:?usage: $0 SOURCE_DIR TARGET IMAGE...}
target=${2:?usage: $0 SOURCE_DIR TARGET IMAGE...}
shift 2
stubs=${FER_STUBS:-}
case "$stubs" in
  ""|grpc_tools|protoc) ;;
  *) echo "FER_STUBS must be grpc_tools, protoc or unset, not '$stubs'" >&2; exit 2 ;;
esac

# The first python3 that has grpc and protobuf (and grpc_tools when asked for):
# the one on PATH (a virtualenv, pyenv) or Debian's, where python3-grpcio,
# python3-protobuf and python3-grpc-tools install.
needs='import grpc, google.protobuf'
[ "$stubs" = grpc_tools ] && needs="$needs, grpc_tools.protoc"
python=
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c "$needs" 2>/dev/null; then python=$candidate; break; fi
done
if [ -z "$python" ]; then
  echo "SKIP: no python3 can run '$needs' (python3-grpcio, python3-protobuf${stubs:+, for $stubs: python3-grpc-tools})"
  exit 77
fi
if [ -z "$stubs" ]; then
  if "$python" -c 'import grpc_tools.protoc' 2>/dev/null; then stubs=grpc_tools; else stubs=protoc; fi
fi
if [ "$stubs" = protoc ] && ! { command -v protoc && command -v grpc_python_plugin; } >/dev/null 2>&1; then
  echo "SKIP: protoc or grpc_python_plugin is not installed (protobuf-compiler, protobuf-compiler-grpc)"
  exit 77
fi

# As docs/client.md: from the repository root, into a folder made first.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen="$tmp/gen"
cd "$src"
mkdir -p "$gen"
echo "stubs: $stubs, python: $(command -v "$python")" >&2
if [ "$stubs" = grpc_tools ]; then
  "$python" -m grpc_tools.protoc -I proto --python_out="$gen" --grpc_python_out="$gen" \
    proto/fer/v1/expression.proto
else
  protoc -I proto --python_out="$gen" --grpc_out="$gen" \
    --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" proto/fer/v1/expression.proto
fi
cd "$OLDPWD"
PYTHONPATH="$gen" "$python" "$src/client/examples/classify.py" --target="$target" "$@"
