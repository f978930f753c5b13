#!/usr/bin/env bash
# bench_replay.sh [BUILD_DIR] — replay throughput of baton-replay (not run by ctest).
#
# Starts a private stack (tools/stack.sh in a temporary directory), parks 10,000 messages over
# three flows, times `baton-replay replay --all --yes` (messages/s), parks them again and times
# the bare loop (consume + publish with confirms + ack, no records) for the ratio, then stops
# everything. BENCH_N overrides the count.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
build=$(cd "$build" && pwd)
n=${BENCH_N:-10000}
replay=$build/tools/replay/baton-replay
park=$build/tests/bench_replay_park
for b in "$replay" "$park"; do
  [[ -x $b ]] || { echo "bench_replay: $b missing; build first (cmake --build $build)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/baton-bench-replay.XXXXXX")
chmod 755 "$work" # the broker may run as the rabbitmq user
export BATON_STACK_DIR=$work/stack
cleanup() {
  BATON_STACK_DIR=$work/stack bash "$here/tools/stack.sh" down >/dev/null 2>&1 || true
  [[ ${BENCH_KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT INT TERM
unset BATON_AMQP_URL BATON_MONGO_URI BATON_RABBITMQ_MGMT_URL
bash "$here/tools/stack.sh" up >"$work/stack.log" 2>&1 || { cat "$work/stack.log" >&2; exit 1; }
eval "$(bash "$here/tools/stack.sh" env)"
export BATON_MONGO_DB=bench_replay USER=${USER:-bench}

settle() { sleep 2; } # returns of the quorum queues settle

"$park" park "$n" >/dev/null
settle
t0=$(date +%s.%N)
"$replay" replay --all --yes --no-progress --ticket BENCH >"$work/replay.out" 2>"$work/replay.err" \
  || { cat "$work/replay.err" >&2; exit 1; }
t1=$(date +%s.%N)
tail -1 "$work/replay.err"
rate=$(echo "$n / ($t1 - $t0)" | bc -l)
printf 'baton-replay: %d messages in %.2f s: %.0f msg/s\n' "$n" "$(echo "$t1 - $t0" | bc -l)" "$rate"

left=$("$replay" stats --json | sed -n 's/^  "total": \([0-9]*\).*/\1/p')
echo "left parked after the replay: ${left:-?}"
"$park" park "$n" >/dev/null
settle
base=$("$park" baseline -)
echo "$base"
brate=$(echo "$base" | sed -n 's/.*: \([0-9]*\) msg\/s/\1/p')
[[ -n $brate && $brate != 0 ]] && printf 'ratio replay/baseline: %.2f\n' "$(echo "$rate / $brate" | bc -l)"
