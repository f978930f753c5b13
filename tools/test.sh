#!/usr/bin/env bash
# tools/test.sh — runs baton's whole test suite from a fresh machine:
# bootstrap, build (plain and ASan+UBSan), start a private stack in a temporary directory, run
# ctest against it, and stop and remove everything it started, even on failure or Ctrl-C.
#
#   tools/test.sh                 everything
#   tools/test.sh -L unit         extra arguments go to ctest (here: unit tests only)
#   BATON_TEST_BUILDS=release tools/test.sh   one build only (release | asan)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILDS=${BATON_TEST_BUILDS:-release asan}
JOBS=$(nproc 2>/dev/null || echo 2)

bash tools/bootstrap.sh

for b in $BUILDS; do
	case $b in
	release) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
	asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DBATON_SANITIZE=ON) ;;
	*) echo "test: unknown build '$b' (release | asan)" >&2; exit 2 ;;
	esac
	echo "test: building $b"
	cmake -S . -B "build/test-$b" -DBATON_WERROR=ON "${flags[@]}" >/dev/null
	cmake --build "build/test-$b" -j "$JOBS" >"build/test-$b.log" 2>&1 ||
		{ cat "build/test-$b.log"; echo "test: build $b failed" >&2; exit 1; }
done

# The stack is ours alone: never a service named by the caller's environment.
unset BATON_AMQP_URL BATON_MONGO_URI
TMP=$(mktemp -d /tmp/baton-test.XXXXXX)
chmod 755 "$TMP" # the RabbitMQ node runs as the rabbitmq user and must reach its directory
export BATON_STACK_DIR=$TMP/stack
# Tests that need to restart services start stacks of their own under $BATON_TEST_TMP; any
# left behind by a crashed test are stopped here too.
export BATON_TEST_TMP=$TMP
cleanup() {
	local d
	for d in "$TMP"/*/; do
		[ -f "$d/stack.state" ] && BATON_STACK_DIR=$d bash "$ROOT/tools/stack.sh" down >/dev/null 2>&1
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! bash tools/stack.sh up; then
	echo "test: FAILED: the private test stack (RabbitMQ + FerretDB) could not start; the reason is above" >&2
	exit 1
fi
eval "$(bash tools/stack.sh env)"
export BATON_TEST_AMQP_URL=$BATON_AMQP_URL BATON_TEST_MONGO_URI=$BATON_MONGO_URI \
	BATON_TEST_MGMT_URL=$BATON_RABBITMQ_MGMT_URL
unset BATON_AMQP_URL BATON_MONGO_URI BATON_RABBITMQ_MGMT_URL

rc=0 passed=0 failed=0
for b in $BUILDS; do
	echo "test: running the $b build's tests"
	out=build/test-$b.ctest.log
	ctest --test-dir "build/test-$b" --output-on-failure -j "$JOBS" "$@" 2>&1 | tee "$out" ||
		rc=1
	# "NN% tests passed, F tests failed out of T"
	read -r f t < <(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1 \2/p' "$out" | tail -n 1) ||
		{ f=1; t=1; rc=1; }
	passed=$((passed + t - f)); failed=$((failed + f))
	[ "$f" = 0 ] || rc=1
done
echo "tests: $passed passed, $failed failed"
exit $rc
