#!/bin/sh
# no_training_symbols.sh BINARY: fails when BINARY defines a symbol of
# model/training (packed sets, readers, balancing, training, evaluation
# reports), i.e. when the server links training code it never uses.
set -eu
binary="$1"
if ! command -v nm >/dev/null 2>&1; then
  echo "skipped: no nm (Debian package binutils)"; exit 77
fi
pattern='fer::(PackedDataset|ConfusionMatrix|ComputeReport|Train\(|TrainOptions|ReadFer2013Csv|ReadImageFolder|BalanceClasses|EvaluateModel)'
found=$(nm -C --defined-only "$binary" | grep -E "$pattern" || true)
if [ -n "$found" ]; then
  echo "$binary defines training symbols:"; echo "$found" | head -20; exit 1
fi
echo "$binary: no symbol of model/training"
