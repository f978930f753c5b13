#!/usr/bin/env bash
# tools/demo.sh — baton's main job in one command, from a fresh machine: bootstrap, build, bring
# up the local stack, run the flows, report; then stop what it started.
#
#   tools/demo.sh          run and stop everything at the end
#   tools/demo.sh --keep   leave the stack up (stop it later with: tools/stack.sh down)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
KEEP=0
for a in "$@"; do
	case $a in
	--keep) KEEP=1 ;;
	-h | --help) sed -n '2,7p' "$0"; exit 0 ;;
	*) echo "demo: unknown argument '$a' (try --help)" >&2; exit 2 ;;
	esac
done

bash tools/bootstrap.sh
echo "demo: building"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc 2>/dev/null || echo 2)" >build/release.log 2>&1 ||
	{ cat build/release.log; echo "demo: build failed" >&2; exit 1; }

if [ $KEEP = 0 ]; then
	trap 'bash tools/stack.sh down' EXIT
fi
bash tools/stack.sh up
bash tools/stack.sh status

workers=$(find build/release/workers -maxdepth 2 -type f -name 'baton-*' -perm -u+x 2>/dev/null || true)
if [ -z "$workers" ]; then
	echo "demo: no flows yet — the stack is up and the build is green; flows arrive with the next issues."
fi
if [ $KEEP = 1 ]; then
	echo "demo: stack left running; use it with: eval \"\$(tools/stack.sh env)\"; stop it with: tools/stack.sh down"
fi
