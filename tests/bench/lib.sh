# tests/bench/lib.sh — sourced by the bench_*.sh scripts (ROOT and BUILD set before): the work
# directory and its cleanup, the private stack, simulators, free ports and process figures.

say() { echo "bench: $*" >&2; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# bench_workdir NAME: WORK (a temporary directory the broker, which may run as its own user, can
# reach), the stack's directory inside it, and an EXIT trap that stops every pid in PIDS and the
# stack and removes WORK (kept when BENCH_KEEP is set).
bench_workdir() {
	WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/baton-bench-$1-XXXXXX")
	chmod 755 "$WORK"
	export BATON_STACK_DIR=$WORK/stack
	PIDS=()
	trap bench_cleanup EXIT
}

bench_cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	bash "$ROOT/tools/stack.sh" down >/dev/null 2>&1 || true
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}

# A private stack of our own (never the caller's services); exports its BATON_* variables.
bench_stack_up() {
	unset BATON_AMQP_URL BATON_MONGO_URI BATON_RABBITMQ_MGMT_URL
	say "starting a private stack in $BATON_STACK_DIR"
	bash "$ROOT/tools/stack.sh" up >&2
	eval "$(bash "$ROOT/tools/stack.sh" env)"
}

# start_sim NAME ARGS...: starts a simulator (its events go where ARGS say, nowhere otherwise);
# sets PORT.
start_sim() {
	local out=$WORK/$1.out
	BATON_AMQP_URL= "$BUILD/tools/sim/$1" "${@:2}" >"$out" 2>"$WORK/$1.err" &
	PIDS+=($!)
	for _ in $(seq 1 100); do
		PORT=$(sed -n 's/^listening on 127.0.0.1://p' "$out" | head -n 1)
		[ -n "$PORT" ] && return 0
		sleep 0.1
	done
	say "$1 did not start; see $WORK/$1.err"
	exit 1
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

TICKS=$(getconf CLK_TCK)
cpu_s() { awk -v t="$TICKS" '{print ($14 + $15) / t}' "/proc/$1/stat"; } # user+system of pid
rss_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }  # peak RSS of pid
