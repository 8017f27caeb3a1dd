#!/usr/bin/env bash
# Builds the two intake fuzzers (clang++, libFuzzer + AddressSanitizer +
# UndefinedBehaviorSanitizer) in their own build folder and runs each for a
# bounded time:
#   preprocess_fuzzer  image bytes -> format check, decoding, preprocessing;
#   request_fuzzer     ClassifyRequest/ClassifyFrame bytes -> proto parsing,
#                      face-count limit, every face's preprocessing.
# Seeds are made now from a few real faces re-encoded as JPEG, PNG, WebP and
# BMP, plus cut-short and corrupted variants, and requests carrying them.
#
#   tests/fuzz/run_fuzz.sh [SECONDS]          per fuzzer; default 60
#
# Environment: FER_FUZZ_BUILD_DIR (default build-fuzz), FER_SHARED_DATA (the
# data folder holding fer2013/train; default ../shared/data beside the
# repository; without it a synthetic face is used), JOBS (build jobs, default 1).
# The corpora grow in <build>/fuzz/<fuzzer>/corpus across runs; seeds are remade
# each run.
# Exits non-zero on a build failure or on any crash, leak, sanitizer report or
# trapped guarantee; the reproducer is left in <build>/fuzz (crash-*, leak-*).
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${FER_FUZZ_BUILD_DIR:-${root}/build-fuzz}"
data="${FER_SHARED_DATA:-${root}/../shared/data}"
faces_per_class=1
classes=(happy sad surprise)

cmake -S "${root}" -B "${build}" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER=clang++ -DFER_BUILD_FUZZERS=ON -DFER_BUILD_TESTS=OFF >/dev/null
cmake --build "${build}" -j "${JOBS:-1}" --target preprocess_fuzzer request_fuzzer preprocess_fuzz_seeds

work="${build}/fuzz"
for fuzzer in preprocess_fuzzer request_fuzzer; do
  rm -rf "${work}/${fuzzer}/seeds"
  mkdir -p "${work}/${fuzzer}/seeds" "${work}/${fuzzer}/corpus"
done

faces=()
for class in "${classes[@]}"; do
  dir="${data}/fer2013/train/${class}"
  [[ -d "${dir}" ]] || continue
  while IFS= read -r face; do faces+=("${face}"); done < <(
    find "${dir}" -name '*.jpg' | sort | head -n "${faces_per_class}")
done
if [[ ${#faces[@]} -eq 0 ]]; then
  echo "run_fuzz: no faces under ${data}/fer2013/train; seeding from a synthetic face" >&2
fi
"${build}/server/preprocess_fuzz_seeds" "${work}/preprocess_fuzzer/seeds" \
  "${work}/request_fuzzer/seeds" "${faces[@]}"

# -max_len covers every seed; -rss_limit_mb and -timeout turn a memory blow-up
# or a hang into a finding rather than a stuck machine. Reproducers (crash-*,
# leak-*, timeout-*) are left in <build>/fuzz/<fuzzer>.
for fuzzer in preprocess_fuzzer request_fuzzer; do
  echo "run_fuzz: ${fuzzer} for ${seconds} s"
  (cd "${work}/${fuzzer}" && "${build}/server/${fuzzer}" corpus seeds \
    -dict="${root}/server/fuzz/preprocess_fuzzer.dict" \
    -max_total_time="${seconds}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1)
  echo "run_fuzz: ${fuzzer}: no findings in ${seconds} s; corpus: $(find "${work}/${fuzzer}/corpus" -type f | wc -l) files"
done
