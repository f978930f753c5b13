#!/usr/bin/env bash
# tests/bench/bench_sim.sh — benchmark of the test tools (NOT run by ctest):
#   1. requests/s of each simulator for a simple GET over keep-alive connections
#      (tests/bench/http_bench.c; wrk is not installed), printed, not asserted;
#   2. baton-load's confirmed publish rate against a bare rabbitmq-c publish loop with the same
#      confirm window and the same body size, same broker, same run (ratio printed).
# It starts its own stack (tools/stack.sh in a temporary directory) and stops it at the end.
#
#   tests/bench/bench_sim.sh [BUILD_DIR]      (default build/bench, configured if missing)
#   env: BENCH_SECONDS (5), BENCH_CONNS (4), BENCH_COUNT (50000), BENCH_WINDOW (256)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-$ROOT/build/bench}
SECS=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNS:-4}
COUNT=${BENCH_COUNT:-50000}
WINDOW=${BENCH_WINDOW:-256}
. "$ROOT/tests/bench/lib.sh"
bench_workdir sim

say "building tools in $BUILD"
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target baton-sim-erp baton-sim-storefront baton-load >/dev/null
gcc -O2 -o "$WORK/http_bench" "$ROOT/tests/bench/http_bench.c" -lpthread
gcc -O2 -o "$WORK/bare_publish" "$ROOT/tests/bench/bare_publish.c" \
	$(pkg-config --cflags --libs librabbitmq)

echo "== simulators: simple GET, keep-alive, $CONNS connections, ${SECS}s =="
start_sim baton-sim-erp
curl -sf -XPOST "http://127.0.0.1:$PORT/api/items" -d '{"sku":"SKU-1","price":"9.90"}' >/dev/null
ERP=$("$WORK/http_bench" 127.0.0.1 "$PORT" /api/items/SKU-1 "$CONNS" "$SECS")
echo "baton-sim-erp        GET /api/items/SKU-1: $(echo "$ERP" | json '["rps"]') req/s ($ERP)"

# A bucket too large to limit anything: the benchmark measures the server, not the limiter.
start_sim baton-sim-storefront --bucket-size 1000000 --leak-rate 1000000
curl -sf -XPOST "http://127.0.0.1:$PORT/admin/api/inventory/set_quantities" \
	-d '{"reason":"bench","quantities":[{"sku":"SKU-1","location_id":1,"quantity":5}]}' >/dev/null
SF=$("$WORK/http_bench" 127.0.0.1 "$PORT" "/admin/api/inventory_levels?sku=SKU-1" "$CONNS" "$SECS")
echo "baton-sim-storefront GET /admin/api/inventory_levels?sku=SKU-1: $(echo "$SF" | json '["rps"]') req/s ($SF)"

echo "== baton-load vs bare rabbitmq-c loop: $COUNT persistent events, window $WINDOW =="
bench_stack_up >/dev/null 2>&1 || { say "the private stack did not start"; exit 1; }
URL=$BATON_AMQP_URL
"$WORK/bare_publish" "$URL" baton.events --setup bench.sink

# Interleaved rounds, the order alternating (what runs second in a round runs while the broker
# still cleans up after the first); the median of each side is the figure (a 2-core machine is
# noisy and one lucky or unlucky round must not decide the ratio).
loads=""; bares=""; size=0
run_load() {
	"$WORK/bare_publish" "$URL" baton.events --setup bench.sink
	REP=$("$BUILD/tools/load/baton-load" --amqp "$URL" --count "$COUNT" --window "$WINDOW" \
		--seed "$round")
	rate=$(echo "$REP" | json '["rate"]')
	size=$(echo "$REP" | json '["bytes"]//'"$COUNT")
	echo "round $round baton-load:   $(printf %.0f "$rate") confirmed/s (avg body $size bytes)"
	loads="$loads $rate"
}
run_bare() {
	"$WORK/bare_publish" "$URL" baton.events --setup bench.sink
	BARE=$("$WORK/bare_publish" "$URL" baton.events "$COUNT" "$WINDOW" "${size:-1260}")
	rate=$(echo "$BARE" | json '["rate"]')
	echo "round $round bare loop:    $(printf %.0f "$rate") confirmed/s"
	bares="$bares $rate"
}
size=1260 # the bodies baton-load makes average this; each round then uses the last measured
for round in 1 2 3 4 5 6; do
	if [ $((round % 2)) = 1 ]; then run_load; run_bare; else run_bare; run_load; fi
done
read -r med_load med_bare ratio < <(python3 -c "
import statistics as s
l=[float(x) for x in '$loads'.split()]; b=[float(x) for x in '$bares'.split()]
print(round(s.median(l)), round(s.median(b)), round(s.median(l)/s.median(b), 3))")
echo "baton-load / bare (medians of 6 rounds) = $med_load / $med_bare = $ratio (goal >= 0.9)"
