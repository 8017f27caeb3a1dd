#!/usr/bin/env bash
# The study of docs/model.md, "Attention as a quality signal": fer-model
# explain over aligned validation faces, the same faces misaligned (moved by
# 40% of their side, or with a crop 40% wider) and patches of photos without
# faces, then scripts/attention_auc.py on the four CSV files.
#
#   scripts/attention-quality-study.sh MODEL VAL_DIR PHOTOS_DIR OUT_DIR
#
# VAL_DIR: a folder of class folders (../shared/data/fer2013/val). PHOTOS_DIR:
# photos without faces, e.g. /usr/share/backgrounds/mate/nature from Debian's
# mate-backgrounds. FER_MODEL (default build/model/fer-model) and EXPLAIN_FLAGS
# (default --device=cpu --precision=fp32) choose the binary and the engine.
set -euo pipefail
model=${1:?weight file}
val=${2:?validation folder}
photos=${3:?folder of photos without faces}
out=${4:?output folder}
src=$(cd "$(dirname "$0")/.." && pwd)
fer_model=${FER_MODEL:-$src/build/model/fer-model}
read -r -a flags <<< "${EXPLAIN_FLAGS:---device=cpu --precision=fp32}"
mkdir -p "$out"
explain() { "$fer_model" explain --model="$model" "${flags[@]}" "$@"; }

explain --data="$val" --count=0 --csv="$out/faces.csv"
explain --data="$val" --count=0 --misalign=shift --misalign_fraction=0.4 --csv="$out/shift.csv"
explain --data="$val" --count=0 --misalign=zoom_out --misalign_fraction=0.4 \
  --csv="$out/zoom_out.csv"
explain --patches_from="$photos" --count=2000 --seed=0 --csv="$out/patches.csv"
python3 "$src/scripts/attention_auc.py" "$out/faces.csv" shift="$out/shift.csv" \
  zoom_out="$out/zoom_out.csv" patches="$out/patches.csv" | tee "$out/auc.txt"
