#!/usr/bin/env bash
# tools/demo.sh — baton's main job in one command, from a fresh machine: bootstrap, build, bring
# up the local stack, start the storefront and ERP simulators and two replicas of every flow,
# play a simulated trading day (checkouts against limited stock, updates, cancellations,
# marketplace orders with unmapped SKUs, ERP faults), then print a report and stop everything.
#
#   tools/demo.sh                  run the day, report, stop everything it started
#   tools/demo.sh --keep           leave the stack, simulators and workers running afterwards
#   tools/demo.sh --stop           stop what an earlier --keep left running
#   tools/demo.sh --checkouts N    size of the day (default 3000 checkouts over 100 SKUs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
KEEP=0 STOP=0
CHECKOUTS=${DEMO_CHECKOUTS:-3000}
SKUS=${DEMO_SKUS:-100}
REPLICAS=2
DIR=/tmp/baton-demo-$(id -u)
BUILD=$ROOT/build/release
FLOWS="orders inventory"

while [ $# -gt 0 ]; do
	case $1 in
	--keep) KEEP=1 ;;
	--stop) STOP=1 ;;
	--checkouts) CHECKOUTS=${2:?--checkouts needs a number}; shift ;;
	-h | --help) sed -n '2,11p' "$0"; exit 0 ;;
	*) echo "demo: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done
case $CHECKOUTS in '' | *[!0-9]*) echo "demo: --checkouts wants a number" >&2; exit 2 ;; esac

say() { echo "demo: $*" >&2; }

# Stops the processes listed in $DIR/pids (workers first, with SIGTERM: they finish in-flight
# work), then the stack, then removes the directory.
stop_all() {
	local p
	if [ -f "$DIR/pids" ]; then
		while read -r p; do kill -TERM "$p" 2>/dev/null || true; done <"$DIR/pids"
		for _ in $(seq 1 100); do
			alive=0
			while read -r p; do kill -0 "$p" 2>/dev/null && alive=1; done <"$DIR/pids"
			[ $alive = 0 ] && break
			sleep 0.2
		done
		while read -r p; do kill -KILL "$p" 2>/dev/null || true; done <"$DIR/pids"
	fi
	[ -f "$DIR/stack/stack.state" ] && BATON_STACK_DIR=$DIR/stack bash tools/stack.sh down >/dev/null 2>&1
	rm -rf "$DIR"
}

if [ $STOP = 1 ]; then
	stop_all
	say "stopped"
	exit 0
fi
if [ -d "$DIR" ]; then
	say "an earlier demo is still in $DIR: stopping it first"
	stop_all
fi

bash tools/bootstrap.sh
say "building (Release) in $BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" >"$BUILD.log" 2>&1 ||
	{ cat "$BUILD.log"; echo "demo: build failed" >&2; exit 1; }

mkdir -p "$DIR/logs"
chmod 755 "$DIR" # the RabbitMQ node runs as the rabbitmq user and must reach its directory
: >"$DIR/pids"
if [ $KEEP = 0 ]; then
	trap 'stop_all' EXIT
else
	trap 'echo "demo: failed; stop what is left with: tools/demo.sh --stop" >&2' ERR
fi
trap 'exit 130' INT
trap 'exit 143' TERM

export BATON_STACK_DIR=$DIR/stack
bash tools/stack.sh up
eval "$(bash tools/stack.sh env)"
VHOST=/
MGMT=$BATON_RABBITMQ_MGMT_URL

# ---- simulators ------------------------------------------------------------------------------

start_sim() { # name args... ; prints the port
	local name=$1 out=$DIR/logs/$1.out
	shift
	"$BUILD/tools/sim/$name" --amqp "$BATON_AMQP_URL" "$@" >"$out" 2>"$DIR/logs/$name.log" &
	echo $! >>"$DIR/pids"
	for _ in $(seq 1 100); do
		port=$(sed -n 's/^listening on 127.0.0.1://p' "$out" | head -n 1)
		[ -n "$port" ] && { echo "$port"; return 0; }
		sleep 0.1
	done
	say "$name did not start; see $DIR/logs/$name.log"
	exit 1
}
ERP=http://127.0.0.1:$(start_sim baton-sim-erp)
# A Shopify Plus-sized API budget (bucket 400, 20 requests/s): a shop selling thousands of
# orders a day is on it; the standard 40 / 2 per second could not take one write-back per order.
SF=http://127.0.0.1:$(start_sim baton-sim-storefront --channel shop-eu --bucket-size 400 --leak-rate 20)
say "ERP simulator on $ERP, storefront simulator on $SF"

# The ERP has a bad day: 3% of sales-order calls fail with 503 (retried), and one customer is
# over its credit limit for the first 3 orders (refused: parked for a person).
curl -sf -XPUT "$ERP/_sim/faults" -d '{"seed": 7, "rules": [
  {"route": "POST /api/sales_orders", "kind": "error", "status": 503, "share": 0.03},
  {"route": "POST /api/sales_orders", "kind": "status", "status": 422, "limit": 3,
   "body": {"error": {"code": "credit_limit", "message": "customer over credit limit"}}}]}' >/dev/null

# ---- configuration and workers ---------------------------------------------------------------

python3 - "$SKUS" >"$DIR/config.json" <<'EOF'
import json, sys
n = int(sys.argv[1])
skus = [f"SKU-{i:05d}" for i in range(n)]
print(json.dumps({
    "orders": {"sku_map": {"shop-eu": {s: s for s in skus}}},
    "inventory": {"channels": {"shop-eu": {"locations": ["WH-MAD", "WH-BCN"],
                                           "storefront_location": "WH-MAD",
                                           "safety_buffer": 0}},
                  "rate_limit": {"bucket_size": 400, "leak_rate": 20},
                  "drift_interval": "30s"}}, indent=1))
EOF

start_worker() { # flow n
	local f=$1 n=$2
	BATON_MONGO_DB=baton_demo BATON_ERP_URL=$ERP BATON_STOREFRONT_URL=$SF \
		BATON_CONFIG=$DIR/config.json BATON_WORKER_ID=$f-$n BATON_METRICS_ADDR=127.0.0.1:0 \
		BATON_RETRY_TIERS=5s,30s,2m,5m BATON_LOG_LEVEL=info \
		"$BUILD/workers/$f/baton-$f" 2>"$DIR/logs/$f-$n.log" &
	echo $! >>"$DIR/pids"
}
for f in $FLOWS; do
	[ -x "$BUILD/workers/$f/baton-$f" ] || { say "baton-$f was not built"; exit 1; }
	for n in $(seq 1 $REPLICAS); do start_worker "$f" "$n"; done
done
say "started $REPLICAS replicas of: $FLOWS (logs in $DIR/logs)"

queue() { # name -> messages (ready + unacked), or 0
	curl -sf "$MGMT/api/queues/%2f/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("messages", 0))' 2>/dev/null || echo 0
}
retrying() {
	curl -sf "$MGMT/api/queues/%2f" | python3 -c '
import json, sys
print(sum(q.get("messages", 0) for q in json.load(sys.stdin) if q["name"].startswith("baton.retry.")))'
}
erp_orders() {
	curl -sf "$ERP/_sim/state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["sales_orders"])'
}
consumers() {
	curl -sf "$MGMT/api/queues/%2f/baton.$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("consumers", 0))' 2>/dev/null || echo 0
}
for f in $FLOWS; do
	for _ in $(seq 1 120); do [ "$(consumers "$f")" -ge $REPLICAS ] && break; sleep 0.5; done
done

# ---- opening stock -----------------------------------------------------------------------------

say "opening stock: $SKUS SKUs at WH-MAD and WH-BCN (the ERP emits erp.stock.changed)"
python3 - "$ERP" "$SKUS" >"$DIR/stock.json" <<'EOF'
import json, random, sys, urllib.request
erp, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(11)
stock = {}
for i in range(n):
    sku = f"SKU-{i:05d}"
    total = 0
    for loc in ("WH-MAD", "WH-BCN"):
        on_hand = rng.randint(0, 150) if loc == "WH-MAD" else rng.randint(0, 50)
        req = urllib.request.Request(f"{erp}/api/stock/{sku}/{loc}", method="PUT",
                                     data=json.dumps({"on_hand": on_hand}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        total += on_hand
    stock[sku] = total
json.dump(stock, sys.stdout)
EOF
# The storefront shows what baton published: wait until every SKU with stock has a level.
for _ in $(seq 1 120); do
	shown=$(curl -sf "$SF/admin/api/inventory_levels?location_id=WH-MAD" -H 'X-Shopify-Shop-Domain: demo-reader' |
		python3 -c 'import json,sys; print(sum(1 for l in json.load(sys.stdin)["inventory_levels"] if l["available"] > 0))')
	want=$(python3 -c 'import json,sys; print(sum(1 for v in json.load(open(sys.argv[1])).values() if v > 0))' "$DIR/stock.json")
	[ "$shown" -ge "$want" ] && break
	sleep 1
done
say "the storefront shows stock for $shown of $want SKUs"

# ---- the trading day ---------------------------------------------------------------------------

say "trading day: $CHECKOUTS checkouts"
python3 tools/demo_day.py --storefront "$SF" --erp "$ERP" --mgmt "$MGMT" --vhost "$VHOST" --skus "$SKUS" \
	--checkouts "$CHECKOUTS" >"$DIR/day.json"

say "waiting for the flows to settle (work queues and retry tiers empty)"
quiet=0
for i in $(seq 1 900); do
	o=$(queue baton.orders) v=$(queue baton.inventory) r=$(retrying)
	parked=$(($(queue baton.orders.dead) + $(queue baton.inventory.dead)))
	[ $((i % 3)) = 1 ] && say "ERP orders $(erp_orders) | queued: orders $o, inventory $v | retrying $r | parked $parked"
	if [ "$o" = 0 ] && [ "$v" = 0 ] && [ "$r" = 0 ]; then
		quiet=$((quiet + 1))
		# the management API's counts lag by up to 5 s: quiet means quiet for 10 s
		[ $quiet -ge 10 ] && break
	else
		quiet=0
	fi
	sleep 1
done

# ---- report ------------------------------------------------------------------------------------

export BATON_MONGO_DB=baton_demo
stats=$("$BUILD/tools/replay/baton-replay" stats --json 2>"$DIR/logs/replay-stats.log" || echo 'null')
curl -sf "$ERP/_sim/state" >"$DIR/erp.json"
curl -sf "$SF/_sim/state" >"$DIR/storefront.json"
python3 - "$DIR" "$stats" <<'EOF'
import json, sys
d, stats = sys.argv[1], sys.argv[2]
day = json.load(open(f"{d}/day.json"))
stock = json.load(open(f"{d}/stock.json"))
erp = json.load(open(f"{d}/erp.json"))
c = erp["counts"]
dups = c["duplicate_external_refs"]
dups = len(dups) if isinstance(dups, (list, dict)) else dups
restocked = day.get("restocked_units", {})
oversold = sum(max(0, u - stock.get(s, 0) - restocked.get(s, 0)) for s, u in day["sold_units"].items())
print()
print("================ baton trading day ================")
sf = json.load(open(f"{d}/storefront.json"))
erp_cancelled = sum(1 for o in erp.get("sales_orders", []) if o.get("status") == "cancelled")
print(f"checkouts sold by the storefront   {day['sold_orders']:>6}   (refused as out of stock: {day['refused']}; "
      f"storefront's own count: {sf['counts'].get('checkouts_sold')})")
print(f"  updated afterwards               {day['updated']:>6}")
print(f"  cancelled afterwards             {day['cancelled']:>6}   (cancelled in the ERP: {erp_cancelled})")
print(f"marketplace orders, unmapped SKUs  {day['unmapped']:>6}")
print(f"goods receipts (units)             {sum(restocked.values()):>6}   (erp.stock.changed during the day)")
print(f"sales orders created in the ERP    {c['sales_orders']:>6}   "
      f"(storefront orders not in the ERP: {day['sold_orders'] - c['sales_orders']}, parked below)")
print(f"duplicate ERP orders               {dups:>6}   (must be 0)")
print(f"oversold units                     {oversold:>6}   (must be 0: units sold beyond the stock that existed)")
# baton-replay stats --json: {"total": n, "flows": {flow: {"total": n, "codes": {code: n}}}}
try:
    st = json.loads(stats)
except ValueError:
    st = None
if not isinstance(st, dict):
    print("dead letters: baton-replay stats failed (see the command below)")
else:
    print(f"dead letters (parked for a person) {st.get('total', 0):>6}")
    for flow, f in sorted(st.get("flows", {}).items()):
        for code, n in sorted(f.get("codes", {}).items()):
            print(f"  {flow:<12} {code:<30} {n:>5}")
EOF
cat <<EOF

Inspect and fix the dead letters (support staff's tool):
  export BATON_AMQP_URL='$BATON_AMQP_URL' BATON_MONGO_URI='$BATON_MONGO_URI' BATON_MONGO_DB=baton_demo
  $BUILD/tools/replay/baton-replay stats
  $BUILD/tools/replay/baton-replay list --flow orders
  $BUILD/tools/replay/baton-replay show <ID>
  # the credit limit was raised in the ERP (its fault rule removed), so send those orders back:
  curl -XPUT $ERP/_sim/faults -d '{"rules": []}'
  $BUILD/tools/replay/baton-replay replay --code erp.http_422 --yes
  # orders with unmapped SKUs: add the SKUs to the map in $DIR/config.json, restart the
  # orders workers, then: baton-replay replay --code sku.unmapped --yes
RabbitMQ management UI: $(echo "$MGMT" | sed -E 's#//([^:]+):([^@]+)@#//#')/  (user baton, password in BATON_AMQP_URL)
  queues baton.<flow>.dead -> Get messages: the x-baton-* headers tell each story
EOF
if [ $KEEP = 1 ]; then
	say "left running (stack, simulators, workers); stop them with: tools/demo.sh --stop"
fi
