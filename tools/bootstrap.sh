#!/usr/bin/env bash
# tools/bootstrap.sh — installs what a fresh Debian machine lacks to build, run and test baton:
# the C toolchain and -dev packages, rabbitmq-server, and FerretDB v1.24.2 (built from its Go
# module into ${XDG_DATA_HOME:-~/.local/share}/baton/bin). Idempotent; a no-op in about a second
# when everything is present. Exits non-zero with one sentence when something cannot be installed.
set -euo pipefail

FERRETDB_VERSION=v1.24.2
BIN_DIR=${XDG_DATA_HOME:-$HOME/.local/share}/baton/bin
PACKAGES=(build-essential cmake pkg-config git ca-certificates iproute2 util-linux curl
	librabbitmq-dev libmongoc-dev libbson-dev libjansson-dev libcurl4-openssl-dev libuv1-dev
	libmicrohttpd-dev libssl-dev libcmocka-dev valgrind rabbitmq-server python3)

say() { echo "bootstrap: $*" >&2; }
fail() { echo "bootstrap: $*" >&2; exit 1; }

missing_packages() {
	local p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
	done
}

install_packages() {
	command -v dpkg-query >/dev/null || fail "this is not a Debian-based system; install the packages listed in tools/bootstrap.sh by hand."
	local missing
	missing=$(missing_packages)
	[ -n "$missing" ] || return 0
	local sudo=()
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || fail "missing packages ($(echo $missing)) and no root or sudo to install them; run as root: apt-get install $(echo $missing)"
		sudo=(sudo)
	fi
	say "installing: $(echo $missing)"
	# A single machine-wide lock keeps two concurrent bootstraps from fighting over apt.
	(
		flock 9
		export DEBIAN_FRONTEND=noninteractive
		"${sudo[@]}" apt-get update -q >/dev/null ||
			fail "apt-get update failed; check the machine's access to Debian's package mirror."
		# shellcheck disable=SC2086
		"${sudo[@]}" apt-get install -y -q --no-install-recommends $missing >/dev/null ||
			fail "apt-get install failed for: $(echo $missing)."
	) 9>/tmp/baton-bootstrap-apt.lock
	missing=$(missing_packages)
	[ -z "$missing" ] || fail "still missing after apt-get: $(echo $missing)."
}

find_go() {
	command -v go 2>/dev/null && return 0
	[ -x /usr/local/go/bin/go ] && { echo /usr/local/go/bin/go; return 0; }
	return 1
}

# The output is read whole first: `ferretdb --version | grep -q` under pipefail fails at random
# (grep exits at the first match, ferretdb gets SIGPIPE) and made bootstrap rebuild FerretDB.
ferretdb_ok() {
	local v
	[ -x "$BIN_DIR/ferretdb" ] && v=$("$BIN_DIR/ferretdb" --version 2>/dev/null) &&
		grep -qx "version: $FERRETDB_VERSION" <<<"$v"
}

# FerretDB's released module embeds no version file, so a plain `go install` builds a binary that
# refuses to start. We build from a writable copy of the module with that file written, which is
# what FerretDB's own build does.
install_ferretdb() {
	ferretdb_ok && return 0
	local go
	go=$(find_go) || fail "FerretDB needs a Go toolchain (1.22 or newer) and none is on PATH; install Go (https://go.dev/dl or Debian's golang-go from bookworm-backports) and rerun."
	say "building FerretDB $FERRETDB_VERSION with $("$go" version | cut -d' ' -f3)"
	local tmp
	tmp=$(mktemp -d)
	trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' RETURN
	(
		cd "$tmp"
		export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
		"$go" mod init baton-ferretdb-build >/dev/null 2>&1
		"$go" mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" >mod.json
	) || fail "could not download FerretDB $FERRETDB_VERSION from the Go module proxy; check the network or GOPROXY."
	local src
	src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' "$tmp/mod.json")
	[ -d "$src" ] || fail "the Go module cache has no FerretDB source after download."
	cp -r "$src" "$tmp/src" && chmod -R u+w "$tmp/src"
	echo "$FERRETDB_VERSION" >"$tmp/src/build/version/version.txt"
	mkdir -p "$BIN_DIR"
	(cd "$tmp/src" && GOFLAGS= "$go" build -trimpath -o "$BIN_DIR/ferretdb.new" ./cmd/ferretdb) ||
		fail "building FerretDB failed (see the Go output above)."
	mv -f "$BIN_DIR/ferretdb.new" "$BIN_DIR/ferretdb"
	ferretdb_ok || fail "the FerretDB binary built in $BIN_DIR does not report $FERRETDB_VERSION."
	say "FerretDB installed in $BIN_DIR/ferretdb"
}

install_packages
# Two clones bootstrapping at once build FerretDB once.
mkdir -p "$BIN_DIR"
exec 8>"$BIN_DIR/.lock"
flock 8
install_ferretdb
