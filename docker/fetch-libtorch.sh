#!/bin/sh
# Downloads a LibTorch zip, checks it against a pinned SHA-256 and unpacks it:
#   docker/fetch-libtorch.sh URL SHA256 DEST    (DEST/libtorch/ afterwards)
# Dockerfile.cuda runs it with its LIBTORCH_URL and LIBTORCH_SHA256 build args.
# An empty SHA256 is refused: an unpinned download makes the image depend on
# whatever the server returns that day. SHA256=unverified accepts that
# explicitly (with a warning). docs/deploy.md says how to pin the hash.
set -eu

if [ $# -ne 3 ]; then
  echo "usage: $0 URL SHA256 DEST" >&2
  exit 2
fi
url=$1
sha=$2
dest=$3

case $sha in
  "")
    echo "fetch-libtorch: LIBTORCH_SHA256 is empty. Pin the zip's hash:" >&2
    echo "  curl -fsSL '$url' | sha256sum" >&2
    echo "  docker build --build-arg LIBTORCH_SHA256=<that hash> ..." >&2
    echo "or pass --build-arg LIBTORCH_SHA256=unverified to build from an unchecked download." >&2
    exit 2
    ;;
  unverified)
    echo "fetch-libtorch: WARNING: LIBTORCH_SHA256=unverified: $url is not checked" >&2
    ;;
  *)
    if ! printf '%s' "$sha" | grep -Eqx '[0-9a-f]{64}'; then
      echo "fetch-libtorch: LIBTORCH_SHA256 '$sha' is not 64 lower-case hex digits" >&2
      exit 2
    fi
    ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 3 -o "$work/libtorch.zip" "$url"
if [ "$sha" != unverified ]; then
  actual=$(sha256sum "$work/libtorch.zip" | cut -d' ' -f1)
  if [ "$actual" != "$sha" ]; then
    echo "fetch-libtorch: $url has SHA-256 $actual, not the pinned $sha" >&2
    exit 1
  fi
fi
mkdir -p "$dest"
unzip -q "$work/libtorch.zip" -d "$dest"
test -f "$dest/libtorch/share/cmake/Torch/TorchConfig.cmake" || {
  echo "fetch-libtorch: $url holds no libtorch/share/cmake/Torch/TorchConfig.cmake" >&2
  exit 1
}
echo "fetch-libtorch: $dest/libtorch ready"
