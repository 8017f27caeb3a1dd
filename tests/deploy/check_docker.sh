#!/usr/bin/env bash
# Static checks of docker/ (no Docker engine needed).
# Usage: tests/deploy/check_docker.sh SOURCE_DIR
#
# Guarantees, when it exits 0:
#   - each Dockerfile builds the way CI does: it runs scripts/install-deps.sh
#     build-only (build stage) and scripts/install-deps.sh runtime (runtime
#     stage), and contains the Makefile's CMake configure line and
#     `cmake --build build`;
#   - install-deps.sh build-only asks for the compilers and -dev packages and
#     none of the test or fuzz tools; the default mode asks for all of them
#     (run against fake dpkg-query / apt-get);
#   - each starts from Debian 12, exposes 50051, 9464 and 8080, runs as a numeric
#     non-root user, has a HEALTHCHECK running fer-healthcheck
#     (docker/healthcheck.sh) with no port in it, serves the model at
#     /opt/fer/models/lla-net.pt and passes only known server flags;
#   - healthcheck.sh dials the running fer-server's --address (both flag
#     spellings, wildcard hosts as 127.0.0.1), FER_HEALTH_TARGET when set, and
#     127.0.0.1:50051 when no fer-server is found (fake /proc, fake fer-client);
#   - Dockerfile.cuda fetches LibTorch through docker/fetch-libtorch.sh, which
#     refuses an empty or malformed LIBTORCH_SHA256 and a zip with another
#     hash, and unpacks one that matches (file:// URLs; unzip needed for the
#     last two);
#   - docker/prepare-model.sh joins weight parts in order, copies a single
#     file, or falls back to `fer-model init` (run against a fake fer-model);
#   - compose files mount only paths that exist, build Dockerfiles that exist,
#     pass only known server flags, and Grafana's mounts match its provisioning;
#     stop_grace_period exceeds --drain_timeout + 2 s; every published port
#     binds ${FER_BIND_ADDRESS:-127.0.0.1} (loopback unless
#     asked), and Grafana's admin password has no default;
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
  grep -qE '^RUN .*scripts/install-deps\.sh build-only( |&|$)' <<<"$joined" \
    || fail "$dockerfile does not run scripts/install-deps.sh build-only (build dependencies, no test tools)"
  grep -E '^RUN ' <<<"$joined" | grep -oE '(RUN|&&) (ba)?(sh )?(scripts|/tmp)/install-deps\.sh( [a-z-]+)?' \
    | grep -qvE 'install-deps\.sh (build-only|runtime)$' \
    && fail "$dockerfile runs install-deps.sh in its default mode: the image does not need the test toolchain"
  grep -qE '^RUN .*install-deps\.sh runtime' <<<"$joined" \
    || fail "$dockerfile does not install runtime libraries with scripts/install-deps.sh runtime"
  grep -qE '^COPY scripts/install-deps\.sh' <<<"$joined" || fail "$dockerfile does not copy scripts/install-deps.sh"
  grep -qF -- "$make_configure" <<<"$joined" \
    || fail "$dockerfile does not configure like the Makefile: '$make_configure'"
  grep -qF 'cmake --build build' <<<"$joined" || fail "$dockerfile does not run 'cmake --build build'"
  grep -qE '^ARG DEBIAN_IMAGE=debian:bookworm' <<<"$joined" || fail "$dockerfile: base is not Debian 12 (bookworm)"
  grep -qE '^FROM \$\{DEBIAN_IMAGE\} AS runtime' <<<"$joined" || fail "$dockerfile: no Debian runtime stage"
  grep -qE '^EXPOSE 50051 9464 8080$' <<<"$joined" || fail "$dockerfile must EXPOSE 50051 9464 8080"
  health=$(grep -E '^HEALTHCHECK ' <<<"$joined")
  grep -qE 'CMD \["fer-healthcheck"\]$' <<<"$health" || fail "$dockerfile: HEALTHCHECK must run fer-healthcheck"
  grep -qE '[0-9]{4,5}' <<<"${health#*CMD}" && fail "$dockerfile: HEALTHCHECK hard-codes a port: $health"
  grep -qF 'install -D -m 0755 docker/healthcheck.sh /out/bin/fer-healthcheck' <<<"$joined" \
    || fail "$dockerfile does not install docker/healthcheck.sh as fer-healthcheck"
  user=$(grep -E '^USER ' <<<"$joined" | tail -1 | awk '{print $2}')
  [[ $user =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || fail "$dockerfile: last USER '$user' is not a numeric non-root uid"
  grep -qF 'prepare-model.sh build/model/fer-model /out/models/lla-net.pt' <<<"$joined" \
    || fail "$dockerfile does not prepare the bundled model"
  grep -qF '"--model=/opt/fer/models/lla-net.pt"' <<<"$joined" || fail "$dockerfile: CMD does not serve /opt/fer/models/lla-net.pt"
  grep -qE '^ENTRYPOINT \["fer-server"\]' <<<"$joined" || fail "$dockerfile: ENTRYPOINT is not fer-server"
  grep -qF 'ldd /opt/fer/bin/*' <<<"$joined" || fail "$dockerfile lost the missing-library check"
  check_flags "$dockerfile"
done
grep -qE '^ARG LIBTORCH_SHA256=' docker/Dockerfile.cuda \
  && grep -qF 'sh /tmp/fetch-libtorch.sh "${LIBTORCH_URL}" "${LIBTORCH_SHA256}" /opt' docker/Dockerfile.cuda \
  && grep -qE '^COPY docker/fetch-libtorch\.sh ' docker/Dockerfile.cuda \
  || fail "Dockerfile.cuda must fetch LibTorch with docker/fetch-libtorch.sh and LIBTORCH_SHA256"
grep -qE '(curl|unzip) -' docker/Dockerfile.cuda && fail "Dockerfile.cuda downloads LibTorch around fetch-libtorch.sh"
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

# install-deps.sh's modes against fake dpkg-query (nothing installed),
# apt-get (records what it is asked for) and sudo.
fakebin="$scratch/bin"
mkdir -p "$fakebin"
printf '#!/bin/sh\nexit 1\n' > "$fakebin/dpkg-query"
printf '#!/bin/sh\necho "$@" >> "%s/apt.log"\n' "$scratch" > "$fakebin/apt-get"
printf '#!/bin/sh\nexec "$@"\n' > "$fakebin/sudo"
chmod +x "$fakebin"/*
asked() {  # MODE: the packages install-deps.sh MODE asks apt-get to install, one a line
  rm -f "$scratch/apt.log"
  PATH="$fakebin:$PATH" bash scripts/install-deps.sh "$1" >/dev/null || return 1
  grep -E '^install ' "$scratch/apt.log" | tr ' ' '\n' | grep -vE '^(install|-.*)$' | sort
}
build_only=$(asked build-only) || fail "install-deps.sh build-only failed"
full=$(asked build) || fail "install-deps.sh build failed"
for pkg in cmake ninja-build libtorch-dev libgrpc++-dev protobuf-compiler-grpc libopencv-dev libabsl-dev \
           prometheus-cpp-dev libssl-dev; do
  grep -qx -- "$pkg" <<<"$build_only" || fail "install-deps.sh build-only lacks $pkg"
done
for pkg in libgtest-dev prometheus yamllint python3-torch clang kubernetes-client; do
  grep -qx -- "$pkg" <<<"$build_only" && fail "install-deps.sh build-only installs the test tool $pkg"
done
[ -z "$(comm -23 <(echo "$build_only") <(echo "$full"))" ] || fail "install-deps.sh build lacks part of build-only"
[ "$(wc -l <<<"$full")" -gt "$(wc -l <<<"$build_only")" ] || fail "install-deps.sh build-only is not leaner"

# healthcheck.sh against a fake /proc and a fake fer-client that prints its target.
printf '#!/bin/sh\nfor a; do case $a in --target=*) echo "${a#--target=}";; esac; done\n' > "$fakebin/fer-client"
chmod +x "$fakebin/fer-client"
fakeproc="$scratch/proc"
health_target() {  # ARGS of the fake fer-server as PID 7 (none: no fer-server runs)
  rm -rf "$fakeproc" && mkdir -p "$fakeproc/1" && printf 'sleep\0' > "$fakeproc/1/cmdline"
  if [ $# -gt 0 ]; then mkdir -p "$fakeproc/7" && printf '%s\0' "$@" > "$fakeproc/7/cmdline"; fi
  FER_PROC_DIR="$fakeproc" PATH="$fakebin:$PATH" sh docker/healthcheck.sh
}
[ "$(health_target /opt/fer/bin/fer-server --model=m --address=0.0.0.0:6000)" = 127.0.0.1:6000 ] \
  || fail "healthcheck.sh does not dial the --address=0.0.0.0:PORT fer-server was given"
[ "$(health_target fer-server --address '[::]:7001' --model=m)" = 127.0.0.1:7001 ] \
  || fail "healthcheck.sh does not read '--address [::]:PORT'"
[ "$(health_target fer-server --address=10.1.2.3:7002)" = 10.1.2.3:7002 ] \
  || fail "healthcheck.sh does not dial a specific --address host"
[ "$(health_target fer-server --address=0.0.0.0:1 --address 0.0.0.0:6003)" = 127.0.0.1:6003 ] \
  || fail "healthcheck.sh must use the last --address, as fer-server does"
[ "$(health_target fer-server '--address=[::1]:6004')" = '[::1]:6004' ] \
  || fail "healthcheck.sh does not keep an IPv6 --address host"
[ "$(health_target fer-server --model=m)" = 127.0.0.1:50051 ] \
  || fail "healthcheck.sh without --address must dial fer-server's default 127.0.0.1:50051"
[ "$(health_target)" = 127.0.0.1:50051 ] || fail "healthcheck.sh with no fer-server must dial 127.0.0.1:50051"
[ "$(FER_HEALTH_TARGET=h:1 health_target fer-server --address=0.0.0.0:6000)" = h:1 ] \
  || fail "healthcheck.sh ignores FER_HEALTH_TARGET"

# fetch-libtorch.sh: refusals need nothing; the download paths use file:// and unzip.
fetch=docker/fetch-libtorch.sh
sh "$fetch" "file://$scratch/none.zip" "" "$scratch/t" 2>"$scratch/err"; rc=$?
[ $rc -eq 2 ] && grep -q 'LIBTORCH_SHA256 is empty' "$scratch/err" \
  || fail "fetch-libtorch.sh must refuse an empty LIBTORCH_SHA256 (rc $rc)"
sh "$fetch" "file://$scratch/none.zip" "abc" "$scratch/t" 2>/dev/null; [ $? -eq 2 ] \
  || fail "fetch-libtorch.sh must refuse a malformed LIBTORCH_SHA256"
if command -v unzip >/dev/null && command -v curl >/dev/null; then
  mkdir -p "$scratch/zip/libtorch/share/cmake/Torch" && echo '# fake' > "$scratch/zip/libtorch/share/cmake/Torch/TorchConfig.cmake"
  python3 -c 'import shutil, sys; shutil.make_archive(sys.argv[1], "zip", sys.argv[2])' "$scratch/lt" "$scratch/zip"
  good=$(sha256sum "$scratch/lt.zip" | cut -d' ' -f1)
  sh "$fetch" "file://$scratch/lt.zip" "$(printf '%064d' 0)" "$scratch/t1" 2>/dev/null; [ $? -eq 1 ] \
    && [ ! -e "$scratch/t1/libtorch" ] || fail "fetch-libtorch.sh must refuse a zip whose hash differs"
  sh "$fetch" "file://$scratch/lt.zip" "$good" "$scratch/t2" >/dev/null \
    && [ -f "$scratch/t2/libtorch/share/cmake/Torch/TorchConfig.cmake" ] \
    || fail "fetch-libtorch.sh does not unpack a zip with the pinned hash"
  sh "$fetch" "file://$scratch/lt.zip" unverified "$scratch/t3" >/dev/null 2>&1 \
    && [ -d "$scratch/t3/libtorch" ] || fail "fetch-libtorch.sh does not accept LIBTORCH_SHA256=unverified"
else
  echo "note: unzip or curl missing; fetch-libtorch.sh's download paths not run"
fi

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
for compose in docker/compose.yaml docker/compose.gpu.yaml; do
  # Each entry under a `ports:` list must start with the loopback default.
  awk '/^ *ports:/ {p=1; next} p && /^ *- / {print; next} {p=0}' "$compose" | while read -r _ entry; do
    [[ $entry == '"${FER_BIND_ADDRESS:-127.0.0.1}:'* ]] \
      || echo "FAIL: $compose publishes $entry beyond 127.0.0.1 by default"
  done | grep . && status=1
done
grep -qE 'GF_SECURITY_ADMIN_PASSWORD: \$\{GRAFANA_ADMIN_PASSWORD:\?' docker/compose.yaml \
  || fail "compose.yaml: Grafana's admin password must come from GRAFANA_ADMIN_PASSWORD, with no default"
grep -qiE 'admin_password.*:-|GF_SECURITY_ADMIN_USER: *admin *$|password: *admin' docker/*.yaml \
  && fail "compose files carry a default Grafana password"
grace_s=$(grep -oE 'stop_grace_period: [0-9]+s' docker/compose.yaml | grep -oE '[0-9]+')
for compose in docker/compose.yaml docker/compose.gpu.yaml; do
  drain_s=$(grep -oE -- '--drain_timeout=[0-9]+s' "$compose" | grep -oE '[0-9]+' | tail -1)
  [ -z "$drain_s" ] || [ "${grace_s:-0}" -gt $((drain_s + 2)) ] \
    || fail "$compose: stop_grace_period (${grace_s:-unset}s) must exceed --drain_timeout (${drain_s}s) + 2 s"
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
