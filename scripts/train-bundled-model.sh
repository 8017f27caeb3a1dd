#!/usr/bin/env bash
# Trains the bundled LLA-Net on a CUDA machine and evaluates it, as recorded in
# model/MODEL_CARD.md. It builds fer-model alone (no gRPC, OpenCV or
# prometheus-cpp needed) against the machine's CUDA LibTorch.
#
#   scripts/train-bundled-model.sh PACKS_DIR OUT_DIR [TOTAL_MINUTES]
#
# PACKS_DIR holds train.pack and val.pack written by `fer-model pack` from
# FER2013's train/ and val/ folders. TOTAL_MINUTES (default 8) bounds the whole
# script: training gets what the build leaves, minus time for evaluation.
# INPUT_BLUR (default 0.0625) is the inference-time blur stored in the model:
# this copy of FER2013's training faces is blurred (about sigma 3 px at 48 px,
# measured against val), so served and validated faces are blurred to match.
# SKIP_BENCH=1 skips the raw CUDA benchmark.
# Environment: CMAKE_PREFIX_PATH must let CMake find LibTorch and Abseil.
set -euo pipefail

packs=${1:?packs dir}
out=${2:?output dir}
total_minutes=${3:-8}
start=$(date +%s)
src=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-/tmp/fer-build-cuda}
mkdir -p "$out/logs"
log() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$out/logs/steps.txt"; }

log "configure and build fer-model"
configure() {
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFER_BUILD_SERVICE=OFF \
    -DFER_BUILD_TESTS=OFF -DCMAKE_CXX_STANDARD="$1" >"$out/logs/configure-$1.txt" 2>&1 &&
  cmake --build "$build" -j "$(nproc)" --target fer-model >"$out/logs/build-$1.txt" 2>&1
}
# Newer LibTorch headers may need C++20; the code builds as either.
configure 17 || { rm -rf "$build"; log "C++17 build failed, trying C++20"; configure 20; }
fer_model="$build/model/fer-model"
log "built: $("$fer_model" 2>&1 | head -1)"

# Evaluation takes about half a minute and the benchmark one more.
reserve=1.8; [ -n "${SKIP_BENCH:-}" ] && reserve=0.7
train_minutes=$(python3 -c "print(max(1.0, $total_minutes - ($(date +%s) - $start) / 60 - $reserve))")
log "train for at most $train_minutes minutes"
"$fer_model" train --data="$packs/train.pack" --val="$packs/val.pack" --out="$out/best.pt" \
  --device=cuda --precision=bf16 --epochs=60 --batch_size=256 --lr=0.01 --lr_decay=0.9 \
  --decay_from=10 --input_blur="${INPUT_BLUR:-0.0625}" \
  --loader_threads=8 --max_minutes="$train_minutes" --checkpoint="$out/checkpoint.pt" \
  --log="$out/logs/train.csv" --model_version="lla-net-fer2013-$(date +%Y%m%d)" \
  --trained_on="FER2013 train (28,709 faces, 48x48 grey), selected on FER2013 val (PublicTest)" \
  2>&1 | tr '\r' '\n' | grep -v '^epoch .*\[' | tee "$out/logs/train.txt"
rm -f "$out/checkpoint.pt"

log "evaluate"
"$fer_model" convert --model="$out/best.pt" --out="$out/best-fp16.pt" --half
for crop in single ten; do
  flag=""; [ "$crop" = ten ] && flag="--ten_crop"
  "$fer_model" eval --model="$out/best.pt" --data="$packs/val.pack" --device=cuda $flag --json \
    --csv="$out/logs/confusion-$crop.csv" --probabilities="$out/logs/probs-cuda-fp32-$crop.csv" \
    > "$out/logs/eval-$crop.json"
  "$fer_model" eval --model="$out/best.pt" --data="$packs/val.pack" --device=cuda $flag >> "$out/logs/eval.txt"
done
"$fer_model" eval --model="$out/best-fp16.pt" --data="$packs/val.pack" --device=cuda --json \
  --probabilities="$out/logs/probs-cuda-fp16file-single.csv" > "$out/logs/eval-fp16file.json"
"$fer_model" eval --model="$out/best.pt" --data="$packs/val.pack" --device=cuda --precision=bf16 \
  --json --probabilities="$out/logs/probs-cuda-bf16-single.csv" > "$out/logs/eval-bf16.json"

log "raw model benchmark"
[ -n "${SKIP_BENCH:-}" ] || "$fer_model" bench --model="$out/best-fp16.pt" --device=cuda --precisions=fp32,bf16,fp16 \
  --batch_sizes=1,8,32,64,128,256,512 --seconds=1 --json > "$out/logs/bench-cuda.json" || true
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/logs/gpu.txt" 2>&1 || true
log "done"
