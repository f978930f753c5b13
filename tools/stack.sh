#!/usr/bin/env bash
# tools/stack.sh — baton's local stack: a private RabbitMQ node and FerretDB on loopback.
#
#   tools/stack.sh up | down | status | env
#   tools/stack.sh broker-restart | db-stop | db-start     (fault injection for tests)
#
# Everything lives in one state directory ($BATON_STACK_DIR, default /tmp/baton-stack-<uid>-<id of
# this checkout>). `down` stops exactly the processes `up` started, by pid, and removes the
# directory. If BATON_AMQP_URL / BATON_MONGO_URI are set, `up` uses those services instead of
# starting its own. BATON_FERRETDB_PG=<postgres url> switches FerretDB to its PostgreSQL backend.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${BATON_STACK_DIR:-/tmp/baton-stack-$(id -u)-$(printf %s "$ROOT" | cksum | cut -d' ' -f1)}
RABBIT_BIN=/usr/lib/rabbitmq/bin
START_TIMEOUT=${BATON_STACK_TIMEOUT:-120}

die() { echo "stack: $*" >&2; exit 1; }
say() { echo "stack: $*" >&2; }

# A loopback TCP port nobody listens on. Random, so that concurrent stacks rarely collide; a
# collision still fails loudly at start because every listener binds explicitly.
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		grep -qx "$p" "$STATE/.ports" 2>/dev/null && continue
		# (captured, not piped to grep -q: under pipefail a SIGPIPE to ss read as "free")
		if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
			echo "$p" >>"$STATE/.ports"
			echo "$p"
			return 0
		fi
	done
	die "no free loopback port found"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Reads a value from the state file written by `up`.
get() { sed -n "s/^$1=//p" "$STATE/stack.state" 2>/dev/null | tail -n 1; }
put() { echo "$1=$2" >>"$STATE/stack.state"; }

# Runs a command as the RabbitMQ service user when we are root (Debian's server refuses to run as
# root and its state must belong to that user); as ourselves otherwise.
as_rabbit() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups -- "$@"
	else
		"$@"
	fi
}

rabbit_env() {
	local r=$STATE/rabbitmq
	echo env HOME="$r/home" \
		RABBITMQ_NODENAME="$(get RABBIT_NODE)" \
		RABBITMQ_CONF_ENV_FILE="$r/rabbitmq-env.conf" \
		RABBITMQ_CONFIG_FILE="$r/rabbitmq.conf" \
		RABBITMQ_ADVANCED_CONFIG_FILE="$r/advanced.config" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$r/enabled_plugins" \
		RABBITMQ_MNESIA_BASE="$r/mnesia" \
		RABBITMQ_LOG_BASE="$r/log" \
		RABBITMQ_PID_FILE="$r/rabbit.pid" \
		RABBITMQ_DIST_PORT="$(get RABBIT_DIST_PORT)" \
		ERL_EPMD_PORT="$(get RABBIT_EPMD_PORT)" \
		ERL_EPMD_ADDRESS=127.0.0.1
}

rabbitmqctl_() {
	# shellcheck disable=SC2046
	as_rabbit $(rabbit_env) "$RABBIT_BIN/rabbitmqctl" -n "$(get RABBIT_NODE)" "$@"
}

start_rabbit() {
	[ -x "$RABBIT_BIN/rabbitmq-server" ] || die "rabbitmq-server is not installed; run tools/bootstrap.sh"
	local r=$STATE/rabbitmq amqp mgmt dist epmd pass id
	amqp=$(free_port); mgmt=$(free_port); dist=$(free_port); epmd=$(free_port)
	id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
	pass=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	mkdir -p "$r/home" "$r/mnesia" "$r/log"
	put RABBIT_NODE "baton-$id@localhost"
	put RABBIT_AMQP_PORT "$amqp"; put RABBIT_MGMT_PORT "$mgmt"
	put RABBIT_DIST_PORT "$dist"; put RABBIT_EPMD_PORT "$epmd"
	put RABBIT_USER baton; put RABBIT_PASS "$pass"
	od -An -N20 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F >"$r/home/.erlang.cookie"
	: >"$r/rabbitmq-env.conf"
	echo '[rabbitmq_management].' >"$r/enabled_plugins"
	echo '[].' >"$r/advanced.config"
	cat >"$r/rabbitmq.conf" <<-EOF
		listeners.tcp.1 = 127.0.0.1:$amqp
		management.tcp.ip = 127.0.0.1
		management.tcp.port = $mgmt
		default_user = baton
		default_pass = $pass
		default_user_tags.administrator = true
		loopback_users = none
		log.console = false
		log.file.level = warning
		disk_free_limit.absolute = 50MB
	EOF
	chmod 400 "$r/home/.erlang.cookie"
	if [ "$(id -u)" = 0 ]; then chown -R rabbitmq:rabbitmq "$r"; fi

	# Our own epmd on a private port, so that `down` can stop it by pid and leave the machine's
	# epmd (if any) alone.
	setsid epmd -port "$epmd" -address 127.0.0.1 </dev/null >"$STATE/epmd.log" 2>&1 &
	put EPMD_PID $!
	# shellcheck disable=SC2046
	setsid env RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}' \
		$(as_rabbit_prefix) $(rabbit_env) "$RABBIT_BIN/rabbitmq-server" \
		</dev/null >"$STATE/rabbitmq.out" 2>&1 &
	put RABBIT_PID $!

	local deadline=$((SECONDS + START_TIMEOUT))
	until rabbitmqctl_ await_startup --timeout 5 >/dev/null 2>&1; do
		alive "$(get RABBIT_PID)" || return 1
		[ $SECONDS -lt $deadline ] || die "RabbitMQ not ready after ${START_TIMEOUT}s; see $r/log"
		sleep 1
	done
	put AMQP_URL "amqp://baton:$pass@127.0.0.1:$amqp/%2f"
	put MGMT_URL "http://baton:$pass@127.0.0.1:$mgmt"
	say "RabbitMQ node $(get RABBIT_NODE) ready: amqp 127.0.0.1:$amqp, management http://127.0.0.1:$mgmt/"
}

# A node that exits during start most often lost a race for one of its random ports with
# another process (concurrent stacks): stop its epmd and start again on new ports, 3 times.
start_rabbit_retrying() {
	local attempt
	for attempt in 1 2 3; do
		start_rabbit && return 0
		say "RabbitMQ exited during start (attempt $attempt): $(grep -ihm1 'eaddrinuse\|error' \
			"$STATE/rabbitmq.out" "$STATE"/rabbitmq/log/*.log 2>/dev/null | cut -c1-200)"
		stop_pid epmd "$(get EPMD_PID)" epmd
		[ $attempt -lt 3 ] || break
		mv "$STATE/rabbitmq.out" "$STATE/rabbitmq.out.$attempt"
		rm -rf "$STATE/rabbitmq.failed.$attempt"
		mv "$STATE/rabbitmq" "$STATE/rabbitmq.failed.$attempt"
	done
	die "RabbitMQ exited during start 3 times; see $STATE/rabbitmq.out and $STATE/rabbitmq/log"
}

# Same for FerretDB (its listener or debug port taken meanwhile): 3 attempts on new ports.
start_ferretdb_retrying() {
	local attempt
	for attempt in 1 2 3; do
		start_ferretdb && return 0
		say "FerretDB exited during start (attempt $attempt): $(grep -m1 -o '"msg":"[^"]*"' \
			"$STATE/ferretdb.log" 2>/dev/null | cut -c1-200)"
		[ $attempt -lt 3 ] || break
		mv "$STATE/ferretdb.log" "$STATE/ferretdb.log.$attempt"
	done
	die "FerretDB exited during start 3 times; see $STATE/ferretdb.log"
}

as_rabbit_prefix() {
	if [ "$(id -u)" = 0 ]; then echo setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups --; fi
}

ferretdb_bin() {
	local b
	for b in "${BATON_FERRETDB_BIN:-}" "${XDG_DATA_HOME:-$HOME/.local/share}/baton/bin/ferretdb" \
		"$(command -v ferretdb 2>/dev/null || true)"; do
		[ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return 0; }
	done
	die "FerretDB is not installed; run tools/bootstrap.sh"
}

# True when a MongoDB wire-protocol server on 127.0.0.1:$1 answers an OP_MSG {hello: 1} with ok: 1.
mongo_hello() {
	timeout 3 bash -c '
		exec 3<>/dev/tcp/127.0.0.1/'"$1"' || exit 1
		# OP_MSG: header(len 52, id 1, to 0, op 2013), flags 0, kind 0, {hello: 1, $db: "admin"}
		printf "\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00\x1f\x00\x00\x00\x10hello\x00\x01\x00\x00\x00\x02\$db\x00\x06\x00\x00\x00admin\x00\x00" >&3
		len=$(head -c 4 <&3 | od -An -tu4 | tr -d " ")
		[ "${len:-0}" -gt 4 ] || exit 1
		# the reply must hold the element ok: 1.0 (type 0x01, "ok", little-endian double 1.0)
		head -c $((len - 4)) <&3 | od -An -v -tx1 | tr -d " \n" | grep -q 016f6b00000000000000f03f' 2>/dev/null
}

start_ferretdb() {
	local f=$STATE/ferretdb port debug bin
	bin=$(ferretdb_bin)
	port=$(free_port); debug=$(free_port)
	mkdir -p "$f/data" "$f/state"
	local backend=(--handler=sqlite --sqlite-url="file:$f/data/")
	if [ -n "${BATON_FERRETDB_PG:-}" ]; then
		backend=(--handler=postgresql --postgresql-url="$BATON_FERRETDB_PG")
	fi
	setsid "$bin" "${backend[@]}" --state-dir="$f/state" --listen-addr="127.0.0.1:$port" \
		--debug-addr="127.0.0.1:$debug" --telemetry=disable --log-level=warn --log-format=json \
		</dev/null >"$STATE/ferretdb.log" 2>&1 &
	put FERRETDB_PID $!
	put FERRETDB_PORT "$port"
	local deadline=$((SECONDS + START_TIMEOUT))
	until mongo_hello "$port"; do
		alive "$(get FERRETDB_PID)" || return 1
		[ $SECONDS -lt $deadline ] || die "FerretDB not ready after ${START_TIMEOUT}s; see $STATE/ferretdb.log"
		sleep 0.2
	done
	put MONGO_URI "mongodb://127.0.0.1:$port/"
	say "FerretDB ready: mongodb://127.0.0.1:$port/ ($("$bin" --version | head -n 1))"
}

cmd_up() {
	if [ -f "$STATE/stack.state" ]; then
		if alive "$(get RABBIT_PID)" || alive "$(get FERRETDB_PID)" || [ -n "$(get EXTERNAL)" ]; then
			say "already up in $STATE"
			return 0
		fi
		rm -rf "$STATE"
	fi
	mkdir -p "$STATE"
	chmod 755 "$STATE"
	: >"$STATE/stack.state"
	# A failed start must not leave half a stack running.
	trap 'if [ $? -ne 0 ]; then say "start failed; stopping what was started"; cmd_down >/dev/null 2>&1 || true; fi' EXIT
	if [ -n "${BATON_AMQP_URL:-}" ]; then
		put AMQP_URL "$BATON_AMQP_URL"; put EXTERNAL 1; say "using RabbitMQ at BATON_AMQP_URL"
	else
		start_rabbit_retrying
	fi
	if [ -n "${BATON_MONGO_URI:-}" ]; then
		put MONGO_URI "$BATON_MONGO_URI"; put EXTERNAL 1; say "using MongoDB at BATON_MONGO_URI"
	else
		start_ferretdb_retrying
	fi
}

# Stops one recorded process: SIGTERM, then SIGKILL after a grace period. The pid is checked
# against the command we started, so a recycled pid is never signalled.
stop_pid() {
	local name=$1 pid=$2 expect=$3 i
	alive "$pid" || return 0
	local cmd
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 0
	[[ $cmd == *"$expect"* ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		alive "$pid" || { say "$name stopped"; return 0; }
		sleep 0.2
	done
	kill -KILL "$pid" 2>/dev/null || true
	say "$name killed after 20s"
}

cmd_down() {
	[ -f "$STATE/stack.state" ] || { say "nothing to stop in $STATE"; rm -rf "$STATE"; return 0; }
	stop_pid FerretDB "$(get FERRETDB_PID)" ferretdb
	local rpid
	rpid=$(cat "$STATE/rabbitmq/rabbit.pid" 2>/dev/null || true)
	stop_pid RabbitMQ "$(get RABBIT_PID)" "$STATE"
	stop_pid RabbitMQ "$rpid" "$STATE"
	stop_pid epmd "$(get EPMD_PID)" epmd
	rm -rf "$STATE"
}

cmd_status() {
	[ -f "$STATE/stack.state" ] || { echo "down ($STATE)"; return 3; }
	local rc=0 p
	for p in RABBIT FERRETDB; do
		if [ -n "$(get ${p}_PID)" ]; then
			if alive "$(get ${p}_PID)"; then echo "$p: running, pid $(get ${p}_PID)"
			else echo "$p: NOT running (pid $(get ${p}_PID))"; rc=1; fi
		fi
	done
	[ -z "$(get MGMT_URL)" ] || echo "management UI: http://127.0.0.1:$(get RABBIT_MGMT_PORT)/ (user baton)"
	[ -z "$(get EXTERNAL)" ] || echo "external services in use (BATON_AMQP_URL / BATON_MONGO_URI)"
	echo "state: $STATE"
	return $rc
}

cmd_env() {
	[ -f "$STATE/stack.state" ] || die "stack is down; run: tools/stack.sh up"
	echo "export BATON_AMQP_URL='$(get AMQP_URL)'"
	echo "export BATON_MONGO_URI='$(get MONGO_URI)'"
	[ -z "$(get MGMT_URL)" ] || echo "export BATON_RABBITMQ_MGMT_URL='$(get MGMT_URL)'"
	echo "export BATON_STACK_DIR='$STATE'"
}

# Fault injection for tests: restart the RabbitMQ application (connections drop, durable queues
# recover from disk), stop and start FerretDB on the same port and data.
cmd_broker_restart() {
	[ -n "$(get RABBIT_NODE)" ] || die "no RabbitMQ of ours in $STATE"
	rabbitmqctl_ stop_app >/dev/null
	rabbitmqctl_ start_app >/dev/null
	rabbitmqctl_ await_startup --timeout 60 >/dev/null
	say "RabbitMQ application restarted"
}

cmd_db_stop() {
	stop_pid FerretDB "$(get FERRETDB_PID)" ferretdb
}

cmd_db_start() {
	local f=$STATE/ferretdb port bin
	port=$(get FERRETDB_PORT)
	[ -n "$port" ] || die "no FerretDB of ours in $STATE"
	alive "$(get FERRETDB_PID)" && { say "FerretDB already running"; return 0; }
	bin=$(ferretdb_bin)
	local backend=(--handler=sqlite --sqlite-url="file:$f/data/")
	if [ -n "${BATON_FERRETDB_PG:-}" ]; then
		backend=(--handler=postgresql --postgresql-url="$BATON_FERRETDB_PG")
	fi
	setsid "$bin" "${backend[@]}" --state-dir="$f/state" --listen-addr="127.0.0.1:$port" \
		--debug-addr=- --telemetry=disable --log-level=warn --log-format=json \
		</dev/null >>"$STATE/ferretdb.log" 2>&1 &
	put FERRETDB_PID $!
	local deadline=$((SECONDS + START_TIMEOUT))
	until mongo_hello "$port"; do
		alive "$(get FERRETDB_PID)" || die "FerretDB exited during restart; see $STATE/ferretdb.log"
		[ $SECONDS -lt $deadline ] || die "FerretDB not ready after ${START_TIMEOUT}s"
		sleep 0.2
	done
	say "FerretDB restarted on 127.0.0.1:$port"
}

case "${1:-}" in
up) cmd_up ;;
broker-restart) cmd_broker_restart ;;
db-stop) cmd_db_stop ;;
db-start) cmd_db_start ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
*) echo "usage: tools/stack.sh up|down|status|env (tests: broker-restart|db-stop|db-start)" >&2; exit 2 ;;
esac
