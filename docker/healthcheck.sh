#!/bin/sh
# The images' Docker HEALTHCHECK (installed as /opt/fer/bin/fer-healthcheck):
# exits 0 only while fer-server's grpc.health.v1 service answers SERVING, i.e.
# after model load and warm-up, through `fer-client health`.
#
# No port is fixed in the image. The target is, in this order:
#   1. FER_HEALTH_TARGET, dialled as given (host:port, unix:PATH);
#   2. the --address of the running fer-server, read from its command line
#      (so `docker run IMAGE ... --address=0.0.0.0:6000` needs nothing else),
#      with a wildcard host (0.0.0.0, [::], empty) replaced by 127.0.0.1;
#   3. fer-server's own default, 127.0.0.1:50051.
# FER_HEALTH_FLAGS adds fer-client flags (e.g. --tls_ca=... with TLS on);
# FER_HEALTH_DEADLINE_MS (default 3000) stays below the HEALTHCHECK --timeout.
# FER_PROC_DIR (default /proc) exists for tests/deploy/check_docker.sh.
set -eu

proc=${FER_PROC_DIR:-/proc}

# The last --address of the first fer-server process, "" when none runs or
# it was started without --address. Both "--address=X" and "--address X".
# Plain sh, tr and head only: the runtime image has no procps.
server_address() {
  for cmdline in "$proc"/[0-9]*/cmdline; do
    [ -r "$cmdline" ] || continue
    args=$(tr '\0' '\n' < "$cmdline" 2>/dev/null) || continue
    first=$(printf '%s\n' "$args" | head -n 1)
    [ "${first##*/}" = fer-server ] || continue
    prev=""
    address=""
    while IFS= read -r arg; do
      [ "$prev" = --address ] && address=$arg
      case $arg in --address=*) address=${arg#--address=} ;; esac
      prev=$arg
    done <<EOF_ARGS
$args
EOF_ARGS
    printf '%s\n' "$address"
    return 0
  done
}

target=${FER_HEALTH_TARGET:-}
if [ -z "$target" ]; then
  address=$(server_address)
  case $address in
    "") target=127.0.0.1:50051 ;;
    unix:*) target=$address ;;
    *)
      host=${address%:*}
      case $host in
        "" | 0.0.0.0 | "[::]" | "*") host=127.0.0.1 ;;
      esac
      target=$host:${address##*:}
      ;;
  esac
fi

# FER_HEALTH_FLAGS is split into words on purpose.
# shellcheck disable=SC2086
exec fer-client health --target="$target" --deadline_ms="${FER_HEALTH_DEADLINE_MS:-3000}" \
  ${FER_HEALTH_FLAGS:-}
