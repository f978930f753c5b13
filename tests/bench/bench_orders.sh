#!/usr/bin/env bash
# tests/bench/bench_orders.sh — benchmark of baton-orders (NOT run by ctest).
#
# For 1 and 2 replicas, with the ERP simulator answering at 0 ms and at 20 ms of added latency:
# the replicas are started (each case on a fresh database), then N storefront.order.created
# events (baton-load, all SKUs mapped) are published and timed until every order's
# baton.order.transferred event is in a sink queue (the step just before the ack); each
# replica's CPU time (user + system, from /proc, start-up included) and peak RSS (VmHWM) are
# read before it is stopped. The
# baseline is a bare rabbitmq-c consume-and-ack (tests/bench/bench_orders_ack.c, same prefetch)
# of the same number of the same messages, measured in the same run before each case. Prints a
# table with orders/s and the ratio to the baseline.
#
# It starts its own stack (tools/stack.sh in a temporary directory), the ERP and storefront
# simulators, and stops everything it started at the end (also on error or ^C).
#
#   tests/bench/bench_orders.sh [BUILD_DIR]     (default build/bench, configured if missing)
#   env: BENCH_ORDERS (500), BENCH_PREFETCH (64), BENCH_TMPDIR (/tmp; the stack's directory)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-$ROOT/build/bench}
N=${BENCH_ORDERS:-500}
PREFETCH=${BENCH_PREFETCH:-64}
. "$ROOT/tests/bench/lib.sh"
bench_workdir orders

say "building in $BUILD"
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target baton-orders baton-sim-erp baton-sim-storefront baton-load \
	baton-topology >/dev/null
gcc -O2 -o "$WORK/ack" "$ROOT/tests/bench/bench_orders_ack.c" $(pkg-config --cflags --libs librabbitmq)

bench_stack_up >/dev/null
MGMT=$BATON_RABBITMQ_MGMT_URL
start_sim baton-sim-erp
ERP=http://127.0.0.1:$PORT
start_sim baton-sim-storefront --bucket-size 1000000 --leak-rate 1000000
SF=http://127.0.0.1:$PORT

# Every SKU baton-load uses is mapped; a queue bound to baton.order.# takes the published events.
python3 - "$WORK/config.json" <<'EOF'
import json, sys
m = {"SKU-%05d" % k: "ITEM-%05d" % k for k in range(1000)}
json.dump({"orders": {"sku_map": {"shop-eu": m}}}, open(sys.argv[1], "w"))
EOF
"$BUILD/tools/topology/baton-topology" declare --flow orders >/dev/null
"$BUILD/tools/topology/baton-topology" declare --flow benchsink --routing-key 'baton.order.#' >/dev/null

depth() { "$WORK/ack" "$BATON_AMQP_URL" baton.orders --depth 2>/dev/null || echo -1; }

wait_depth() { # n timeout_s
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt $end ]; do
		[ "$(depth)" = "$1" ] && return 0
		sleep 0.5
	done
	say "queue did not reach $1 (at $(depth))"
	return 1
}

wait_consumers() { # n timeout_s
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt $end ]; do
		[ "$(curl -sf "$MGMT/api/queues/%2F/baton.orders" | json '["consumers"]' 2>/dev/null)" = "$1" ] &&
			return 0
		sleep 0.2
	done
	say "baton.orders did not get $1 consumers"
	return 1
}

publish() { # n
	"$BUILD/tools/load/baton-load" --count "$1" --mix orders=100,updates=0,cancels=0,stock=0 \
		--skus 1000 >/dev/null
	wait_depth "$1" 60
}

baseline() { # -> seconds to consume and ack N
	publish "$N"
	"$WORK/ack" "$BATON_AMQP_URL" baton.orders "$N" "$PREFETCH"
}

sink() { "$WORK/ack" "$BATON_AMQP_URL" baton.benchsink --depth; }
erp_orders() { curl -sf "$ERP/_sim/state" | json '["counts"]["sales_orders"]'; }


# p50/p99 of baton_handler_duration_seconds over every replica's /metrics (stdin: the scrapes),
# linear within the histogram bucket, in ms.
percentiles() {
	python3 -c '
import re, sys
b = {}
for line in sys.stdin:
    m = re.match(r"baton_handler_duration_seconds_bucket\{.*le=\"([^\"]+)\"\} (\d+)", line)
    if m:
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        b[le] = b.get(le, 0) + int(m.group(2))
les = sorted(b)
total = b[les[-1]] if les else 0
def q(p):
    want, lo, prev = p * total, 0.0, 0
    for le in les:
        if b[le] >= want:
            if le == float("inf"):
                return lo * 1000
            return (lo + (le - lo) * (want - prev) / max(1, b[le] - prev)) * 1000
        lo, prev = le, b[le]
    return 0.0
print(f"{q(0.5):.0f}/{q(0.99):.0f}" if total else "-")'
}

run_case() { # replicas latency_ms case_no
	local r=$1 lat=$2 c=$3 t0 t1 pids=() ports=() cpu="" rss="" port
	local rules='[]'
	[ "$lat" -gt 0 ] && rules="[{\"route\": \"*\", \"kind\": \"latency\", \"ms\": $lat}]"
	curl -sf -XPUT "$ERP/_sim/faults" -d "{\"rules\": $rules}" >/dev/null
	local before
	"$WORK/ack" "$BATON_AMQP_URL" baton.orders --purge # nothing left from the baseline
	before=$(erp_orders)
	for i in $(seq 1 "$r"); do
		port=$(free_port)
		ports+=("$port")
		BATON_ERP_URL=$ERP BATON_STOREFRONT_URL=$SF BATON_CONFIG=$WORK/config.json \
			BATON_MONGO_DB=bench_$c BATON_WORKER_ID=bench-$c-$i \
			BATON_METRICS_ADDR=127.0.0.1:$port \
			BATON_PREFETCH=$PREFETCH BATON_LOG_LEVEL=${BENCH_LOG_LEVEL:-warn} \
			"$BUILD/workers/orders/baton-orders" 2>>"$WORK/worker.err" &
		pids+=($!)
		PIDS+=($!)
	done
	wait_consumers "$r" 60 # started and ready: start-up is not part of the figure
	local sink0
	sink0=$(sink)
	t0=$(date +%s.%N)
	"$BUILD/tools/load/baton-load" --count "$N" --mix orders=100,updates=0,cancels=0,stock=0 \
		--skus 1000 >/dev/null
	# done = every order's baton.order.transferred event published (the step before its ack)
	local end=$((SECONDS + 900))
	while [ "$(sink)" -lt $((sink0 + N)) ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
	t1=$(date +%s.%N)
	for p in "${pids[@]}"; do
		cpu+="$(cpu_s "$p")s/"
		rss+="$(rss_mb "$p")MB/"
	done
	local lat_ms
	lat_ms=$(for port in "${ports[@]}"; do curl -sf "http://127.0.0.1:$port/metrics"; done | percentiles)
	for p in "${pids[@]}"; do kill -TERM "$p"; wait "$p" 2>/dev/null || true; done
	[ $(($(erp_orders) - before)) -eq "$N" ] ||
		say "case $c: $(($(erp_orders) - before)) ERP orders for $N events (see $WORK/worker.err)"
	echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}') ${cpu%/} ${rss%/} $lat_ms"
}

printf '%-9s %-8s %10s %12s %8s %14s %18s %12s %18s\n' replicas erp_ms orders/s bare_ack/s ratio \
	handle_p50/p99 cpu_s/replica cpu_ms/order peak_rss/replica
c=0
for lat in 0 20; do
	for r in 1 2; do
		c=$((c + 1))
		bare=$(baseline)
		read -r secs cpu rss lat_ms < <(run_case "$r" "$lat" "$c")
		rate=$(awk -v n="$N" -v s="$secs" 'BEGIN {print n / (s > 0 ? s : 1e-6)}')
		brate=$(awk -v n="$N" -v s="$bare" 'BEGIN {print n / (s > 0 ? s : 1e-6)}')
		per=$(echo "$cpu" | tr -d s | tr / '\n' | awk -v n="$N" '{t += $1} END {printf "%.2f", t * 1000 / n}')
		printf '%-9s %-8s %10.1f %12.0f %8.4f %14s %18s %12s %18s\n' "$r" "$lat" "$rate" "$brate" \
			"$(awk -v a="$rate" -v b="$brate" 'BEGIN {print a / b}')" "${lat_ms}ms" "$cpu" "$per" "$rss"
	done
done
echo "($N orders per case, prefetch $PREFETCH; orders/s from the publish of the orders to the last transferred event, replicas already running; ratio = orders/s over the bare consume-and-ack rate; handle p50/p99 = time from delivery to settle per order, from the workers' baton_handler_duration_seconds histogram; cpu = user+system of each replica since its start, cpu_ms/order = their sum over the orders)"
