#!/usr/bin/env bash
# Puts the model an image serves at OUT, the way `make serve` picks it:
#   1. the bundled weights, stored as model/weights/lla-net-fer2013.pt.part* and
#      joined in name order (or a single lla-net-fer2013.pt, if one is there);
#   2. otherwise an untrained file written by `fer-model init`, so that an image
#      can be built and smoke-tested before trained weights exist. fer-server
#      reports such a model loudly at start-up.
# Usage: docker/prepare-model.sh FER_MODEL_BINARY OUT
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 FER_MODEL_BINARY OUT" >&2
  exit 2
fi
fer_model=$1
out=$2
bundled=model/weights/lla-net-fer2013.pt

mkdir -p "$(dirname "$out")"
shopt -s nullglob
export LC_ALL=C  # part00, part01, ... join in byte order whatever the locale
parts=("$bundled".part*)
if [ ${#parts[@]} -gt 0 ]; then
  echo "prepare-model: joining ${#parts[@]} parts of $bundled"
  cat "${parts[@]}" > "$out"
elif [ -f "$bundled" ]; then
  echo "prepare-model: copying $bundled"
  cp "$bundled" "$out"
else
  echo "prepare-model: no bundled weights; writing an UNTRAINED model"
  "$fer_model" init --out="$out"
fi
test -s "$out"
