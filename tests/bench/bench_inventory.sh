#!/usr/bin/env bash
# tests/bench/bench_inventory.sh — benchmark of baton-inventory (NOT run by ctest):
#   1. throughput: baton-load publishes a burst of erp.stock.changed (Zipf over the SKUs, so hot
#      SKUs change many times) as fast as the broker confirms; printed: stock events processed
#      per second, storefront level writes and requests per second, and the coalescing ratio
#      (events per level written, events per request); baseline in the same run: baton-load's
#      own confirmed publish rate.
#   2. latency: one ERP stock change at a time (PUT on the ERP simulator), time until the
#      storefront simulator shows the new level (polled every ~1 ms); p50/p99 printed.
# Throughput is measured for 1 and 2 replicas with the storefront answering at 0 and 20 ms of
# added latency, each case on a fresh database. It starts its own stack (tools/stack.sh in a
# temporary directory), the simulators and the workers, and stops them all at the end. Figures are printed, never asserted.
#
#   tests/bench/bench_inventory.sh [BUILD_DIR]      (default build/bench, configured if missing)
#   env: BENCH_EVENTS (3000), BENCH_SKUS (200), BENCH_SAMPLES (100)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-$ROOT/build/bench}
EVENTS=${BENCH_EVENTS:-3000}
SKUS=${BENCH_SKUS:-200}
SAMPLES=${BENCH_SAMPLES:-100}
. "$ROOT/tests/bench/lib.sh"
bench_workdir inv

say "building in $BUILD"
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target baton-inventory baton-sim-erp baton-sim-storefront \
	baton-load >/dev/null

bench_stack_up

start_sim baton-sim-erp --amqp "$BATON_AMQP_URL"
ERP_PORT=$PORT
start_sim baton-sim-storefront --amqp "$BATON_AMQP_URL" --bucket-size 100000 --leak-rate 100000
SF_PORT=$PORT
cat >"$WORK/config.json" <<JSON
{"inventory": {
  "channels": {"shop-eu": {"locations": ["WH-1", "WH-2", "WH-3"], "storefront_location": "WH-1"}},
  "rate_limit": {"bucket_size": 100000, "leak_rate": 100000},
  "drift_interval": "0s"
}}
JSON

WORKERS=() PORTS=()
# Starts replica i of case c on its own database (every case starts from an empty state).
start_worker() { # case i
	local port
	port=$(free_port)
	BATON_STOREFRONT_URL=http://127.0.0.1:$SF_PORT BATON_CONFIG=$WORK/config.json \
		BATON_MONGO_DB=bench_inv_$1 BATON_METRICS_ADDR=127.0.0.1:$port BATON_LOG_LEVEL=warn \
		BATON_WORKER_ID=bench-inv-$1-$2 \
		"$BUILD/workers/inventory/baton-inventory" 2>>"$WORK/worker.err" &
	PIDS+=($!)
	WORKERS+=($!)
	PORTS+=("$port")
	for _ in $(seq 1 300); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && return 0
		sleep 0.1
	done
	say "replica $2 of case $1 not ready"
	exit 1
}
stop_workers() {
	for p in "${WORKERS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	WORKERS=() PORTS=()
}
metric() { # metric NAME -> sum over the running replicas (0 when absent)
	for port in "${PORTS[@]}"; do curl -sf "http://127.0.0.1:$port/metrics"; done |
		awk -v n="$1" '$1 ~ "^"n"({|$)" { v += $2 } END { print v+0 }'
}
sf_latency() { # ms added to every storefront answer
	local rules='[]'
	[ "$1" -gt 0 ] && rules="[{\"route\": \"*\", \"kind\": \"latency\", \"ms\": $1}]"
	curl -sf -XPUT "http://127.0.0.1:$SF_PORT/_sim/faults" -d "{\"rules\": $rules}" >/dev/null
}

# One case: replicas r, storefront latency ms, case number c. Prints a table row.
run_case() {
	local r=$1 lat=$2 c=$3 a prev=-1 stall=0 last=-1 cpu="" rss="" p
	sf_latency "$lat"
	for i in $(seq 1 "$r"); do start_worker "$c" "$i"; done
	local t0 tack tend w q
	t0=$(date +%s.%N)
	"$BUILD/tools/load/baton-load" --amqp "$BATON_AMQP_URL" --count "$EVENTS" --mix stock=100 \
		--skus "$SKUS" --locations 3 --run-id "case$c" >"$WORK/load-$c.json"
	while :; do
		a=$(metric baton_messages_acked_total)
		[ "$a" -ge "$EVENTS" ] && break
		if [ "$a" = "$prev" ]; then stall=$((stall + 1)); else stall=0; fi
		[ "$stall" -gt 1200 ] && { say "case $c: no progress for 60 s ($a acked)"; exit 1; }
		prev=$a
		sleep 0.05
	done
	tack=$(date +%s.%N)
	# the publishers drain the last dirty SKUs: wait until the writes stop moving
	while :; do
		w=$(metric baton_inventory_levels_written_total)
		[ "$w" = "$last" ] && break
		last=$w
		sleep 0.3
	done
	tend=$(date +%s.%N)
	q=$(metric baton_inventory_storefront_requests_total)
	for p in "${WORKERS[@]}"; do
		cpu+="$(cpu_s "$p")s/"
		rss+="$(rss_mb "$p")MB/"
	done
	stop_workers
	python3 - "$r" "$lat" "$t0" "$tack" "$tend" "$EVENTS" "$w" "$q" "$WORK/load-$c.json" \
		"${cpu%/}" "${rss%/}" <<'PY'
import json, sys
r, lat = sys.argv[1], sys.argv[2]
t0, tack, tend = map(float, sys.argv[3:6])
ev, w, q = int(sys.argv[6]), int(float(sys.argv[7])), int(float(sys.argv[8]))
base = json.load(open(sys.argv[9]))["rate"]
cpu, rss = sys.argv[10], sys.argv[11]
rate = ev / (tack - t0)
cpu_ms = sum(float(x.rstrip("s")) for x in cpu.split("/")) * 1000 / ev
print(f"{r:<9} {lat:<7} {rate:>9.0f} {base:>10.0f} {rate / base:>7.4f} {w / (tend - t0):>9.0f} "
      f"{ev / max(w, 1):>9.1f} {ev / max(q, 1):>9.1f} {cpu:>18} {cpu_ms:>11.2f} {rss:>18}")
PY
}

echo "== baton-inventory: $EVENTS stock events over $SKUS SKUs x 3 locations (Zipf 1.1), per case =="
printf '%-9s %-7s %9s %10s %7s %9s %9s %9s %18s %11s %18s\n' replicas sf_ms events/s \
	publish/s ratio writes/s ev/level ev/request cpu_s/replica cpu_ms/event peak_rss/replica
c=0
for lat in 0 20; do
	for r in 1 2; do
		c=$((c + 1))
		run_case "$r" "$lat" "$c"
	done
done
echo "(events/s: stock events acked per second from the start of the publish; baseline publish/s:"
echo " baton-load's confirmed publish rate of the same events in the same case; ratio = events/s"
echo " over it; ev/level and ev/request: the coalescing; cpu: user+system of each replica since"
echo " its start; sf_ms: latency added to every storefront answer)"

sf_latency 0
start_worker lat 1
echo "== latency: ERP stock change -> storefront write, $SAMPLES sequential changes =="
python3 - "$ERP_PORT" "$SF_PORT" "$SAMPLES" <<'PY'
import http.client, json, sys, time
erp_port, sf_port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
erp = http.client.HTTPConnection("127.0.0.1", erp_port)
sf = http.client.HTTPConnection("127.0.0.1", sf_port)
def level():
    sf.request("GET", "/admin/api/inventory_levels?sku=LAT-1&location_id=WH-1")
    r = json.loads(sf.getresponse().read())
    ls = r["inventory_levels"]
    return ls[0]["available"] if ls else None
lat = []
for i in range(n + 1):
    want = 1000 + i
    t0 = time.perf_counter()
    erp.request("PUT", "/api/stock/LAT-1/WH-1", json.dumps({"on_hand": want}),
                {"Content-Type": "application/json"})
    erp.getresponse().read()
    deadline = t0 + 30
    while level() != want:
        if time.perf_counter() > deadline:
            sys.exit("bench: level never arrived")
        time.sleep(0.001)
    if i:  # the first one also creates the documents
        lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"ERP change -> storefront level: p50 {p(0.50):.1f} ms, p99 {p(0.99):.1f} ms, "
      f"max {lat[-1]:.1f} ms over {len(lat)} changes (coalesce tick 50 ms)")
PY
