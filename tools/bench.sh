#!/usr/bin/env bash
# tools/bench.sh — runs every benchmark of the project and writes a Markdown results file with
# the machine it ran on. Each benchmark (tests/bench/bench_*.sh) builds what it needs, starts its
# own private stack and simulators, measures its figures against a baseline taken in the same
# run (printed as ratios), and stops everything it started. Figures are printed, never asserted.
#
#   tools/bench.sh                    all benchmarks -> tests/bench/RESULTS.md
#   tools/bench.sh orders replay      only bench_orders.sh and bench_replay.sh
#   BENCH_OUT=/tmp/r.md tools/bench.sh   another output file
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${BENCH_OUT:-$ROOT/tests/bench/RESULTS.md}
BUILD=$ROOT/build/bench

bash tools/bootstrap.sh
echo "bench: building (Release) in $BUILD" >&2
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" >"$BUILD.log" 2>&1 ||
	{ cat "$BUILD.log"; echo "bench: build failed" >&2; exit 1; }

scripts=()
if [ $# -gt 0 ]; then
	for n in "$@"; do
		f=tests/bench/bench_$n.sh
		[ -f "$f" ] || { echo "bench: no benchmark '$n' ($f)" >&2; exit 2; }
		scripts+=("$f")
	done
else
	for f in tests/bench/bench_*.sh; do scripts+=("$f"); done
fi

machine() {
	local cpu mem ferret rabbit
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
	mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
	rabbit=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo unknown)
	ferret=$("${BATON_FERRETDB_BIN:-$HOME/.local/share/baton/bin/ferretdb}" --version 2>/dev/null |
		sed -n 's/^version: *//p' | head -n 1)
	echo "| what | value |"
	echo "|---|---|"
	echo "| date | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
	echo "| commit | $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ' (with local changes)') |"
	echo "| CPU | ${cpu:-unknown}, $(nproc) cores |"
	echo "| memory | $mem |"
	echo "| kernel | $(uname -r) |"
	echo "| compiler | $(gcc --version | head -n 1) |"
	echo "| RabbitMQ | $rabbit (private node, loopback) |"
	echo "| FerretDB | ${ferret:-unknown} (SQLite backend, loopback) |"
}

tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp".*' EXIT
{
	echo "# baton benchmark results"
	echo
	echo "Written by \`tools/bench.sh\`. Every figure comes from one run on the machine below; each"
	echo "is shown next to its baseline measured in the same run (ratio = figure / baseline)."
	echo "The machine is shared and small: compare ratios, not absolute numbers, across runs."
	echo
	echo "## Machine"
	echo
	machine
} >"$tmp"

rc=0
for f in "${scripts[@]}"; do
	name=$(basename "$f" .sh)
	echo "bench: running $name" >&2
	start=$(date +%s)
	if bash "$f" "$BUILD" >"$tmp.out" 2>"$tmp.err"; then
		status=ok
	else
		status="FAILED (exit $?)"
		rc=1
		tail -n 30 "$tmp.err" >&2
	fi
	{
		echo
		echo "## $name ($status, $(($(date +%s) - start)) s)"
		echo
		# A script that prints Markdown tables keeps them; anything else goes in a code block.
		if grep -q '^|' "$tmp.out"; then
			cat "$tmp.out"
		else
			echo '```'
			cat "$tmp.out"
			echo '```'
		fi
	} >>"$tmp"
	cat "$tmp.out"
done
mv "$tmp" "$OUT"
echo "bench: results written to $OUT" >&2
exit $rc
