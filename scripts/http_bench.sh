#!/usr/bin/env bash
# HTTP/JSON API against gRPC on one fer-server: the same model, faces and
# concurrency through both front ends, in alternating rounds so that a noisy
# machine weighs on both alike.
#
#   gRPC: `fer-client bench --mode=unary --concurrency=C` (one face a call);
#   HTTP: C Python threads, each with one keep-alive connection, POSTing one
#         image a request to /v1/classify (the body is the image file).
#
# Not a test: numbers depend on the machine. Prints one line per round and
# the mean faces/s of each front end. Configured through the environment:
#
#   BUILD=build               build folder holding server/ and client/
#   MODEL=build/lla-net-fer2013.pt   weight file (`make build/lla-net-fer2013.pt`)
#   PRECISION=bf16 THREADS=0 MAX_BATCH_SIZE=8
#   CONCURRENCY=4 DURATION=10s ROUNDS=2
#   IMAGES=../shared/data/fer2013/val   folder of face images (JPEG/PNG)
#
# Example: ROUNDS=2 CONCURRENCY=4 scripts/http_bench.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
model=${MODEL:-$build/lla-net-fer2013.pt}
precision=${PRECISION:-bf16}
threads=${THREADS:-0}
max_batch_size=${MAX_BATCH_SIZE:-8}
concurrency=${CONCURRENCY:-4}
duration=${DURATION:-10s}
rounds=${ROUNDS:-2}
images=${IMAGES:-$root/../shared/data/fer2013/val}

fer_server=$build/server/fer-server
fer_client=$build/client/fer-client
for tool in "$fer_server" "$fer_client"; do
  [ -x "$tool" ] || { echo "http_bench: $tool is missing; build it first" >&2; exit 1; }
done
[ -f "$model" ] || { echo "http_bench: no model at $model (make $build/lla-net-fer2013.pt)" >&2; exit 1; }
[ -d "$images" ] || { echo "http_bench: no image folder at $images" >&2; exit 1; }

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

read -r grpc_port http_port metrics_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
"$fer_server" --model="$model" --address="127.0.0.1:$grpc_port" \
  --http_address="127.0.0.1:$http_port" --metrics_address="127.0.0.1:$metrics_port" \
  --device=cpu --precision="$precision" --threads="$threads" \
  --max_batch_size="$max_batch_size" > "$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
  grep -q SERVING "$tmp/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.2
done
head -1 "$tmp/server.log"

seconds=${duration%s}
http_round() {
  python3 - "$http_port" "$concurrency" "$seconds" "$images" <<'EOF'
import http.client, os, sys, threading, time
port, concurrency, seconds, folder = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
               if f.lower().endswith((".jpg", ".jpeg", ".png")))
faces = [open(p, "rb").read() for p in paths[:2000]]
ok, failed, latencies = [0] * concurrency, [0] * concurrency, [[] for _ in range(concurrency)]
end = time.monotonic() + seconds
def client(i):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    n = i
    while time.monotonic() < end:
        start = time.monotonic()
        connection.request("POST", "/v1/classify", faces[n % len(faces)],
                           {"Content-Type": "image/jpeg"})
        response = connection.getresponse()
        response.read()
        latencies[i].append(time.monotonic() - start)
        if response.status == 200: ok[i] += 1
        else: failed[i] += 1
        n += concurrency
threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
began = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.monotonic() - began
all_latencies = sorted(l for ls in latencies for l in ls)
p = lambda q: 1000 * all_latencies[min(len(all_latencies) - 1, int(q * len(all_latencies)))]
print(f"{sum(ok) / elapsed:.1f} {p(0.5):.1f} {p(0.99):.1f} {sum(failed)}")
EOF
}
grpc_round() {
  "$fer_client" bench --target="127.0.0.1:$grpc_port" --mode=unary --concurrency="$concurrency" \
    --duration="$duration" --images="$images" --json > "$tmp/grpc.json"
  python3 - "$tmp/grpc.json" <<'EOF'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")][-1]
print(f"{r['faces_per_s']:.1f} {r['p50_ms']:.1f} {r['p99_ms']:.1f} {r['requests'] - r['ok_requests']}")
EOF
}

echo "concurrency $concurrency, one face a request, $duration a round; faces/s p50_ms p99_ms failed"
grpc_sum=0
http_sum=0
for round in $(seq "$rounds"); do
  read -r fps p50 p99 failed < <(grpc_round)
  echo "round $round gRPC: $fps faces/s, p50 $p50 ms, p99 $p99 ms, failed $failed"
  grpc_sum=$(python3 -c "print($grpc_sum + $fps)")
  read -r fps p50 p99 failed < <(http_round)
  echo "round $round HTTP: $fps faces/s, p50 $p50 ms, p99 $p99 ms, failed $failed"
  http_sum=$(python3 -c "print($http_sum + $fps)")
done
python3 -c "print(f'mean over $rounds rounds: gRPC {$grpc_sum / $rounds:.1f} faces/s, HTTP {$http_sum / $rounds:.1f} faces/s')"
# The server's own view, without the clients' share of the CPU: mean time from
# a request's arrival to its answer, per front end.
curl -sS "http://127.0.0.1:$metrics_port/metrics" | python3 -c '
import re, sys
text = sys.stdin.read()
for rpc in ("Classify", "HttpClassify"):
    get = lambda name: float(re.search(name + r"\{rpc=\"" + rpc + r"\"\} (\S+)", text).group(1))
    total, count = get("fer_request_duration_seconds_sum"), get("fer_request_duration_seconds_count")
    print(f"server-side mean {rpc}: {1000 * total / max(count, 1):.1f} ms over {count:.0f} requests")'
