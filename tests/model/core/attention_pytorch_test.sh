#!/bin/sh
# The engine's attention maps against a PyTorch computation of the last LLAM's
# map from the specification (attention_reference.py), at fp32 on the CPU, for
# a freshly initialised model and, where its parts are in the checkout, the
# bundled one (which also blurs its input).
# Usage: attention_pytorch_test.sh FER_MODEL PYTHON SOURCE_DIR
# Exit 77 (ctest: skipped) when PYTHON cannot import torch.
set -eu
fer_model=$1
python=$2
source_dir=$3
if ! "$python" -c "import torch" >/dev/null 2>&1; then
  echo "SKIP: $python cannot import torch (Debian: apt-get install python3-torch)"
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
reference=$source_dir/tests/model/core/attention_reference.py

"$python" "$reference" faces "$dir/tree" "$source_dir/../shared/data/fer2013/val"
"$fer_model" init --out="$dir/init.pt" --seed=5
models="$dir/init.pt"
if ls "$source_dir"/model/weights/lla-net-fer2013.pt.part* >/dev/null 2>&1; then
  cat "$source_dir"/model/weights/lla-net-fer2013.pt.part* > "$dir/bundled.pt"
  models="$models $dir/bundled.pt"
fi
for model in $models; do
  "$fer_model" explain --model="$model" --data="$dir/tree" --count=0 --csv="$dir/maps.csv" \
    --device=cpu --precision=fp32 --threads=2
  "$python" "$reference" check "$model" "$dir/maps.csv"
done
echo "PASS"
