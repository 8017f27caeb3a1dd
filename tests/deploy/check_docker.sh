#!/usr/bin/env bash
# Static checks of docker/ (no Docker engine needed).
# Usage: tests/deploy/check_docker.sh SOURCE_DIR
#
# Guarantees, when it exits 0:
#   - each Dockerfile builds the way CI does: it runs scripts/install-deps.sh
#     (build stage) and scripts/install-deps.sh runtime (runtime stage), and
#     contains the Makefile's CMake configure line and `cmake --build build`;
#   - each starts from Debian 12, exposes 50051 and 9464, runs as a numeric
#     non-root user, has a HEALTHCHECK through `fer-client health`, serves the
#     model at /opt/fer/models/lla-net.pt and passes only known server flags;
#   - docker/prepare-model.sh joins weight parts in order, copies a single
#     file, or falls back to `fer-model init` (run against a fake fer-model);
#   - compose files mount only paths that exist, build Dockerfiles that exist,
#     pass only known server flags, and Grafana's mounts match its provisioning;
#   - both .dockerignore files are identical, exclude build trees and keep
#     scripts/ and model/ in the context.
# Prints one FAIL line per broken guarantee and exits 1.
set -uo pipefail

src=$(cd "${1:?usage: $0 SOURCE_DIR}" && pwd) || exit 2
cd "$src" || exit 2
here=tests/deploy
status=0
fail() { echo "FAIL: $*"; status=1; }

known_flags=$(grep -v '^#' "$here/fer_server_flags.txt" | grep .)
check_flags() {  # FILE: each server flag in it ("--x=" in a JSON list, "- --x=" in YAML) must be known
  local file=$1 flag
  for flag in $(grep -oE -- '("|- )--[a-z_]+=' "$file" | sed -E 's/^("|- )--//; s/=$//' | sort -u); do
    case $flag in
      target|deadline_ms|out) continue ;;  # fer-client / fer-model flags
    esac
    grep -qx "$flag" <<<"$known_flags" || fail "$file passes unknown fer-server flag --$flag"
  done
}

# The configure line CI runs, from the Makefile's `configure` target.
make_configure=$(grep -oE 'cmake -S \. -B \$\(BUILD_DIR\)[^$]*' Makefile | head -1 | sed 's/\$(BUILD_DIR)/build/; s/ *$//')
[ -n "$make_configure" ] || fail "cannot find the cmake configure line in Makefile"

for dockerfile in docker/Dockerfile docker/Dockerfile.cuda; do
  [ -f "$dockerfile" ] || { fail "$dockerfile missing"; continue; }
  # Join continuation lines so that each instruction is one line.
  joined=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$dockerfile" | tr -s ' ')
  grep -qE '^RUN .*scripts/install-deps\.sh( |&|$)' <<<"$joined" \
    && grep -E '^RUN .*scripts/install-deps\.sh( |&|$)' <<<"$joined" | grep -vq 'install-deps\.sh runtime' \
    || fail "$dockerfile does not run scripts/install-deps.sh (build dependencies) as CI does"
  grep -qE '^RUN .*install-deps\.sh runtime' <<<"$joined" \
    || fail "$dockerfile does not install runtime libraries with scripts/install-deps.sh runtime"
  grep -qE '^COPY scripts/install-deps\.sh' <<<"$joined" || fail "$dockerfile does not copy scripts/install-deps.sh"
  grep -qF -- "$make_configure" <<<"$joined" \
    || fail "$dockerfile does not configure like the Makefile: '$make_configure'"
  grep -qF 'cmake --build build' <<<"$joined" || fail "$dockerfile does not run 'cmake --build build'"
  grep -qE '^ARG DEBIAN_IMAGE=debian:bookworm' <<<"$joined" || fail "$dockerfile: base is not Debian 12 (bookworm)"
  grep -qE '^FROM \$\{DEBIAN_IMAGE\} AS runtime' <<<"$joined" || fail "$dockerfile: no Debian runtime stage"
  grep -qE '^EXPOSE 50051 9464$' <<<"$joined" || fail "$dockerfile must EXPOSE 50051 9464"
  grep -qE '^HEALTHCHECK .*CMD \["fer-client", "health", "--target=127\.0\.0\.1:50051"' <<<"$joined" \
    || fail "$dockerfile: HEALTHCHECK must run fer-client health against 127.0.0.1:50051"
  user=$(grep -E '^USER ' <<<"$joined" | tail -1 | awk '{print $2}')
  [[ $user =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || fail "$dockerfile: last USER '$user' is not a numeric non-root uid"
  grep -qF 'prepare-model.sh build/model/fer-model /out/models/lla-net.pt' <<<"$joined" \
    || fail "$dockerfile does not prepare the bundled model"
  grep -qF '"--model=/opt/fer/models/lla-net.pt"' <<<"$joined" || fail "$dockerfile: CMD does not serve /opt/fer/models/lla-net.pt"
  grep -qE '^ENTRYPOINT \["fer-server"\]' <<<"$joined" || fail "$dockerfile: ENTRYPOINT is not fer-server"
  grep -qF 'ldd /opt/fer/bin/*' <<<"$joined" || fail "$dockerfile lost the missing-library check"
  check_flags "$dockerfile"
done
grep -qE 'CMAKE_PREFIX_PATH=/opt/libtorch' docker/Dockerfile.cuda || fail "Dockerfile.cuda does not build against the CUDA LibTorch"
grep -qE '^ARG LIBTORCH_URL=https://download\.pytorch\.org/libtorch/cu[0-9]+/libtorch-cxx11-abi-' docker/Dockerfile.cuda \
  || fail "Dockerfile.cuda: LIBTORCH_URL must default to a cxx11-ABI CUDA LibTorch from download.pytorch.org"

# prepare-model.sh against a fake fer-model, in a scratch tree.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/model/weights"
printf '#!/bin/sh\ncase "$1" in init) ;; *) exit 3 ;; esac\nprintf untrained > "${2#--out=}"\n' > "$scratch/fer-model"
chmod +x "$scratch/fer-model"
prepare="$src/docker/prepare-model.sh"
(cd "$scratch" && bash "$prepare" ./fer-model out/a.pt >/dev/null) && [ "$(cat "$scratch/out/a.pt")" = untrained ] \
  || fail "prepare-model.sh does not fall back to fer-model init"
printf 'A' > "$scratch/model/weights/lla-net-fer2013.pt.part10"
printf 'B' > "$scratch/model/weights/lla-net-fer2013.pt.part02"
printf 'C' > "$scratch/model/weights/lla-net-fer2013.pt.part01"
(cd "$scratch" && bash "$prepare" /bin/false out/b.pt >/dev/null 2>&1) \
  && [ "$(cat "$scratch/out/b.pt")" = CBA ] || fail "prepare-model.sh does not join weight parts in name order"
rm "$scratch"/model/weights/*
printf 'W' > "$scratch/model/weights/lla-net-fer2013.pt"
(cd "$scratch" && bash "$prepare" /bin/false out/c.pt >/dev/null) && [ "$(cat "$scratch/out/c.pt")" = W ] \
  || fail "prepare-model.sh does not copy a single bundled weight file"
(cd "$scratch" && bash "$prepare" 2>/dev/null); [ $? -eq 2 ] || fail "prepare-model.sh without arguments must exit 2"

# Compose files.
for compose in docker/compose.yaml docker/compose.gpu.yaml; do
  [ -f "$compose" ] || { fail "$compose missing"; continue; }
  for mount in $(grep -oE '^\s*- \.\./[^:]+:' "$compose" | sed -E 's/^\s*- //; s/:$//'); do
    [ -e "docker/$mount" ] || fail "$compose mounts $mount, which does not exist"
  done
  for dockerfile in $(grep -oE '^\s*dockerfile: \S+' "$compose" | awk '{print $2}'); do
    [ -f "$dockerfile" ] || fail "$compose builds $dockerfile, which does not exist"
  done
  check_flags "$compose"
done
grep -q 'stop_grace_period: ' docker/compose.yaml || fail "compose.yaml: fer-server needs a stop_grace_period above --drain_timeout"
dash_dir=$(grep -oE '\.\./deploy/grafana/dashboards:[^:]+' docker/compose.yaml | cut -d: -f2)
grep -qE "^\s*path: $dash_dir\s*$" deploy/grafana/provisioning/dashboards/*.yaml \
  || fail "Grafana's dashboard provider does not read $dash_dir, where compose.yaml mounts the dashboards"
grep -q "url: http://prometheus:9090" deploy/grafana/provisioning/datasources/*.yaml \
  || fail "Grafana's data source does not point at the compose prometheus service"

# Build-context filters.
ignore=docker/Dockerfile.dockerignore
cmp -s "$ignore" docker/Dockerfile.cuda.dockerignore || fail "the two .dockerignore files differ"
for pattern in .git build 'build-*'; do
  grep -qxF -- "$pattern" "$ignore" || fail "$ignore does not exclude $pattern"
done
if grep -vE '^\s*(#|$)' "$ignore" | grep -qE '^(\*|\*\*|\*\*/\*|scripts.*|model.*|.*\.pt.*)$'; then
  fail "$ignore excludes sources or weights the build needs"
fi

[ $status -eq 0 ] && echo "docker/: all checks passed"
exit $status
