#!/usr/bin/env bash
# Starts a real fer-server and checks what deploy/ relies on from it.
# Usage: tests/deploy/check_live_metrics.sh FER_SERVER FER_MODEL [FER_CLIENT]
#
# Steps and guarantees, when it exits 0:
#   1. `FER_MODEL init` writes an untrained model; fer-server starts on it, on
#      CPU, on free loopback ports, with --max_queue_faces=1234;
#   2. it becomes healthy: `FER_CLIENT health` exits 0 (with FER_CLIENT), or
#      /metrics shows fer_model_info (without); FER_CLIENT `info` then makes
#      one GetModelInfo call; the images' HEALTHCHECK script
#      (docker/healthcheck.sh), given this server's command line as its /proc,
#      passes, and fails for a server on a port that is not gRPC (the metrics port);
#   3. GET /metrics passes `promtool check metrics`;
#   4. every fer_* name the dashboard and the Prometheus rules query is in
#      that scrape (check_dashboard.py; fer_gpu_memory_bytes may be absent on
#      CPU), fer_queue_capacity_faces is 1234, fer_model_info says device cpu;
#   5. rpc labels are bare method names and code labels gRPC code names, as
#      the alert rules select them;
#   6. `fer-server --helpfull` lists every flag in fer_server_flags.txt;
#   7. on SIGTERM it drains and exits 0 within --drain_timeout plus 10s.
# Prints FAIL lines and the server's log, and exits 1, otherwise.
set -uo pipefail

server=${1:?usage: $0 FER_SERVER FER_MODEL [FER_CLIENT]}
model_tool=${2:?usage: $0 FER_SERVER FER_MODEL [FER_CLIENT]}
client=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
start_timeout_s=${FER_START_TIMEOUT_S:-120}
drain_timeout_s=5

status=0
fail() { echo "FAIL: $*"; status=1; }
tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
finish() {
  if [ $status -ne 0 ] && [ -f "$tmp/server.log" ]; then
    echo "---- fer-server log (last 40 lines)"
    tail -n 40 "$tmp/server.log"
  fi
  [ $status -eq 0 ] && echo "live fer-server: all checks passed"
  exit $status
}

# 1. Model and server.
if ! "$model_tool" init --out="$tmp/model.pt" > "$tmp/init.log" 2>&1; then
  fail "fer-model init failed: $(tail -n 3 "$tmp/init.log")"
  finish
fi
read -r grpc_port metrics_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
"$server" --model="$tmp/model.pt" --address="127.0.0.1:$grpc_port" \
  --metrics_address="127.0.0.1:$metrics_port" --http_address=127.0.0.1:0 --device=cpu --threads=1 \
  --max_queue_faces=1234 --drain_timeout="${drain_timeout_s}s" > "$tmp/server.log" 2>&1 &
pid=$!
metrics_url="http://127.0.0.1:$metrics_port/metrics"

# 2. Wait until healthy.
healthy=0
for _ in $(seq "$start_timeout_s"); do
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid"; fail "fer-server exited with status $? during start-up"; pid=; finish
  fi
  if [ -n "$client" ]; then
    "$client" health --target="127.0.0.1:$grpc_port" > /dev/null 2>&1 && { healthy=1; break; }
  else
    curl -fsS "$metrics_url" 2>/dev/null | grep -q '^fer_model_info' && { healthy=1; break; }
  fi
  sleep 1
done
[ $healthy -eq 1 ] || { fail "fer-server not healthy after ${start_timeout_s}s"; finish; }
if [ -n "$client" ]; then
  "$client" info --target="127.0.0.1:$grpc_port" > "$tmp/info.log" 2>&1 \
    || fail "fer-client info failed: $(tail -n 3 "$tmp/info.log")"
  mkdir -p "$tmp/proc/$pid" "$tmp/proc-off/9"
  cp "/proc/$pid/cmdline" "$tmp/proc/$pid/cmdline"
  PATH="$(dirname "$client"):$PATH" FER_PROC_DIR="$tmp/proc" sh "$root/docker/healthcheck.sh" \
    > "$tmp/hc.log" 2>&1 || fail "docker/healthcheck.sh fails against the serving fer-server: $(tail -n 2 "$tmp/hc.log")"
  printf 'fer-server\0--address=127.0.0.1:%s\0' "$metrics_port" > "$tmp/proc-off/9/cmdline"
  PATH="$(dirname "$client"):$PATH" FER_PROC_DIR="$tmp/proc-off" sh "$root/docker/healthcheck.sh" \
    > /dev/null 2>&1 && fail "docker/healthcheck.sh passes against a port with no gRPC server"
fi

# 3. Scrape and lint.
if ! curl -fsS "$metrics_url" -o "$tmp/metrics.txt"; then
  fail "GET $metrics_url failed"
  finish
fi
promtool check metrics < "$tmp/metrics.txt" || fail "promtool check metrics rejects the exposition"

# 4. Names the dashboard and rules use.
python3 "$here/check_dashboard.py" "$root/deploy/grafana/dashboards/fer-server.json" "$tmp/metrics.txt" \
  --rules "$root"/deploy/prometheus/rules/*.yml --allow-missing fer_gpu_memory_bytes \
  || fail "the dashboard or the rules query metrics this server does not export"
grep -qE '^fer_queue_capacity_faces(\{\})? 1234(\.0+)?$' "$tmp/metrics.txt" \
  || fail "fer_queue_capacity_faces does not report --max_queue_faces=1234"
grep -qE '^fer_model_info\{.*device="cpu".*\} 1(\.0+)?$' "$tmp/metrics.txt" \
  || fail "fer_model_info{device=\"cpu\",...} 1 is missing"

# 5. Label values the rules select on.
codes='OK|CANCELLED|UNKNOWN|INVALID_ARGUMENT|DEADLINE_EXCEEDED|NOT_FOUND|ALREADY_EXISTS|PERMISSION_DENIED'
codes+='|RESOURCE_EXHAUSTED|FAILED_PRECONDITION|ABORTED|OUT_OF_RANGE|UNIMPLEMENTED|INTERNAL|UNAVAILABLE'
codes+='|DATA_LOSS|UNAUTHENTICATED'
for value in $(grep -oE '^fer_[a-z_]+\{[^}]*\bcode="[^"]*"' "$tmp/metrics.txt" | sed -E 's/.*code="([^"]*)"/\1/' | sort -u); do
  [[ $value =~ ^($codes)$ ]] || fail "code=\"$value\" is not a gRPC status code name (rules match OK, INVALID_ARGUMENT, ...)"
done
for value in $(grep -oE '^fer_[a-z_]+\{[^}]*\brpc="[^"]*"' "$tmp/metrics.txt" | sed -E 's/.*rpc="([^"]*)"/\1/' | sort -u); do
  [[ $value =~ ^[A-Z][A-Za-z]*$ ]] || fail "rpc=\"$value\" is not a bare method name (rules match rpc=\"Classify\")"
done

# 6. Flags the deploy files pass.
"$server" --helpfull > "$tmp/help.txt" 2>&1 || true
for flag in $(grep -v '^#' "$here/fer_server_flags.txt" | grep .); do
  grep -qE -- "-{1,2}$flag( |$)" "$tmp/help.txt" || fail "fer-server --helpfull does not list --$flag"
done

# 7. Drain on SIGTERM.
kill -TERM "$pid"
exited=0
for _ in $(seq $((drain_timeout_s + 10))); do
  kill -0 "$pid" 2>/dev/null || { exited=1; break; }
  sleep 1
done
if [ $exited -eq 1 ]; then
  wait "$pid"; rc=$?; pid=
  [ $rc -eq 0 ] || fail "fer-server exited with status $rc after SIGTERM (want 0)"
else
  fail "fer-server still running $((drain_timeout_s + 10))s after SIGTERM"
fi
finish
