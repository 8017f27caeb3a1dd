#!/usr/bin/env bash
# Installs the Debian 12 packages this project builds, tests and runs with.
# Idempotent: asks apt only for what is missing, so a second run is a no-op.
#   scripts/install-deps.sh              build + test dependencies (default)
#   scripts/install-deps.sh build-only   what `cmake -DFER_BUILD_TESTS=OFF` and
#                                        `cmake --build` need: no test or fuzz tools
#                                        (the container images' build stage)
#   scripts/install-deps.sh runtime      only what a built fer-server needs to run
set -euo pipefail

mode=${1:-build}

build_pkgs=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libopencv-dev opencv-data
  libabsl-dev prometheus-cpp-dev
  # fer-server reads its TLS certificate's validity dates with OpenSSL.
  libssl-dev
  # The HTTP/JSON API: libmicrohttpd serves it, nlohmann/json (header-only)
  # reads and writes its documents.
  libmicrohttpd-dev nlohmann-json3-dev
)
# Only the tests and fuzzers need these.
test_pkgs=(
  libgtest-dev libgmock-dev
  # Tests: real Prometheus server and promtool, python client example (and its
  # stubs through grpc_tools), YAML lint, TLS certs.
  prometheus python3 python3-grpcio python3-protobuf python3-grpc-tools python3-torch yamllint
  openssl curl
  # Fuzzing (make fuzz): clang with libFuzzer and the sanitizer runtimes.
  clang libclang-rt-14-dev
  # Layout checks (tests/layout): formatting and function lengths.
  clang-format universal-ctags
)
runtime_pkgs=(
  libtorch1.13 libgrpc++1.51 libprotobuf32 libopencv-core406 libopencv-imgproc406
  libopencv-imgcodecs406 libopencv-videoio406 libopencv-objdetect406 opencv-data
  libprometheus-cpp-pull1.0 libprometheus-cpp-core1.0 libabsl20220623 libssl3 libmicrohttpd12 ca-certificates
)

case "$mode" in
  build) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  build-only) pkgs=("${build_pkgs[@]}") ;;
  runtime) pkgs=("${runtime_pkgs[@]}") ;;
  *) echo "usage: $0 [build|build-only|runtime]" >&2; exit 2 ;;
esac

# kubectl renders the Kubernetes overlays in tests; any kubectl will do, so only
# ask for Debian's when none is on the PATH (another package may own the binary).
if [ "$mode" = build ] && ! command -v kubectl >/dev/null 2>&1; then
  pkgs+=(kubernetes-client)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} missing packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
