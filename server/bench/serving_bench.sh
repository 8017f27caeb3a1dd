#!/usr/bin/env bash
# Serving benchmark: what fer-server delivers next to what the engine alone can
# do, on the same device, threads and precision.
#
#   1. `fer-model bench` at batch sizes 1 and max_batch_size: the ceiling;
#   2. a fer-server on free loopback ports, then `fer-client bench` against it:
#      latency at concurrency 1 and 32 (one face per request), and throughput
#      at saturation (SATURATION_CONCURRENCY callers, enough to keep full
#      batches queued);
#   3. the server's own view from /metrics: mean batch size, requests by code.
#
# Not a test: numbers depend on the machine. Prints a table and, with --json,
# one JSON object per line (the benchmarks' faces_per_s, p50_ms, p90_ms,
# p99_ms keys). Everything is configured through the environment:
#
#   BUILD=build               build folder holding model/, server/, client/
#   MODEL=                    weight file; default: an untrained 112 x 112
#                             model written by `fer-model init` (same compute)
#   DEVICE=cpu THREADS=0 PRECISION=fp32
#   MAX_BATCH_SIZE=32 MAX_QUEUE_DELAY_US=2000 INSTANCES=1
#   DURATION=10s              per load level
#   CONCURRENCIES="1 32"      latency levels
#   SATURATION_CONCURRENCY=   default 2 x MAX_BATCH_SIZE
#   IMAGES=                   folder of face images to send; default
#                             ../shared/data/fer2013/val (real FER2013 faces)
#
# Example: BUILD=build DURATION=20s server/bench/serving_bench.sh --json
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
device=${DEVICE:-cpu}
threads=${THREADS:-0}
precision=${PRECISION:-fp32}
max_batch_size=${MAX_BATCH_SIZE:-32}
max_queue_delay_us=${MAX_QUEUE_DELAY_US:-2000}
instances=${INSTANCES:-1}
duration=${DURATION:-10s}
concurrencies=${CONCURRENCIES:-1 32}
saturation=${SATURATION_CONCURRENCY:-$((2 * max_batch_size))}
images=${IMAGES:-$root/../shared/data/fer2013/val}
json=0
[ "${1:-}" = "--json" ] && json=1

fer_model=$build/model/fer-model
fer_server=$build/server/fer-server
fer_client=$build/client/fer-client
for tool in "$fer_model" "$fer_server" "$fer_client"; do
  if [ ! -x "$tool" ]; then
    echo "serving_bench: $tool is missing; build it first (cmake --build $build --target" \
      "fer-model fer-server fer-client)" >&2
    exit 1
  fi
done
image_flag=()
if [ -d "$images" ]; then
  image_flag=(--images="$images")
else
  echo "serving_bench: no image folder at $images; fer-client sends a synthetic face" >&2
fi

tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
log() { [ $json -eq 1 ] || echo "$@"; }

model=${MODEL:-}
if [ -z "$model" ]; then
  model=$tmp/untrained-112.pt
  "$fer_model" init --out="$model" > /dev/null
fi

# 1. The engine alone.
log "== fer-model bench (device $device, threads $threads, precision $precision)"
"$fer_model" bench --model="$model" --device="$device" --threads="$threads" \
  --precision="$precision" --batch_sizes="1,$max_batch_size" --json > "$tmp/engine.json"
python3 - "$tmp/engine.json" "$json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))
if sys.argv[2] == "1":
    print(json.dumps({"source": "fer-model bench", "rows": rows}))
else:
    print(f"{'batch':>6} {'faces/s':>10} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9}")
    for r in rows:
        print(f"{r['batch']:>6} {r['faces_per_s']:>10.1f} {r['p50_ms']:>9.2f} "
              f"{r['p90_ms']:>9.2f} {r['p99_ms']:>9.2f}")
EOF

# 2. The server.
read -r grpc_port metrics_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
target=127.0.0.1:$grpc_port
"$fer_server" --model="$model" --address="$target" --metrics_address="127.0.0.1:$metrics_port" \
  --http_address= \
  --device="$device" --threads="$threads" --precision="$precision" \
  --max_batch_size="$max_batch_size" --max_queue_delay_us="$max_queue_delay_us" \
  --instances="$instances" > "$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 300); do
  "$fer_client" health --target="$target" > /dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.5
done
"$fer_client" health --target="$target" > /dev/null || { cat "$tmp/server.log" >&2; exit 1; }
log "== fer-server: $(grep -m1 '^fer-server: model' "$tmp/server.log" | cut -c13-)"

run_level() {  # concurrency label
  local concurrency=$1 label=$2
  # Unmeasured warm-up at this level, so that every batch size the level
  # produces has run once.
  "$fer_client" bench --target="$target" --concurrency="$concurrency" --duration=2s \
    --faces_per_request=1 "${image_flag[@]}" --json > /dev/null
  "$fer_client" bench --target="$target" --concurrency="$concurrency" --duration="$duration" \
    --faces_per_request=1 "${image_flag[@]}" --json > "$tmp/level.json"
  if [ $json -eq 1 ]; then
    sed "s/^{/{\"source\":\"fer-client bench\",\"level\":\"$label\",/" "$tmp/level.json"
  else
    python3 - "$tmp/level.json" "$label" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).readline())
print(f"{sys.argv[2]:>22} {r['concurrency']:>5} {r['faces_per_s']:>10.1f} {r['p50_ms']:>9.2f} "
      f"{r['p90_ms']:>9.2f} {r['p99_ms']:>9.2f}  {r.get('codes', {})}")
EOF
  fi
}
log "== fer-client bench, 1 face per request, $duration per level"
log "$(printf '%22s %5s %10s %9s %9s %9s  %s' level conc faces/s 'p50 ms' 'p90 ms' 'p99 ms' codes)"
for concurrency in $concurrencies; do
  run_level "$concurrency" "latency"
done
run_level "$saturation" "saturation"

# 3. The server's view.
curl -fsS "http://127.0.0.1:$metrics_port/metrics" > "$tmp/metrics.txt"
python3 - "$tmp/metrics.txt" "$json" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
def value(series):
    m = re.search("^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0
batches = value("fer_batch_size_count")
summary = {
    "source": "fer-server /metrics",
    "batches": batches,
    "mean_batch_size": value("fer_batch_size_sum") / batches if batches else 0.0,
    "mean_inference_ms": 1000 * value("fer_inference_duration_seconds_sum") / batches if batches else 0.0,
    "faces": value("fer_faces_total"),
}
if sys.argv[2] == "1":
    print(json.dumps(summary))
else:
    print("== fer-server: %(batches)d batches, mean batch %(mean_batch_size).1f faces, "
          "mean inference %(mean_inference_ms).1f ms, %(faces)d faces" % summary)
EOF
