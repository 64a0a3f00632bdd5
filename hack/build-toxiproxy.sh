#!/usr/bin/env bash
# Builds toxiproxy (the latency proxy bench/run.py puts between every tool and PostgreSQL, so goose, psql
# and schemagate pay the same network delay) from the Go module proxy, once, into a versioned cache
# outside the repo. Prints the server binary's path. TOXIPROXY_BIN skips the build.
set -euo pipefail
if [ -n "${TOXIPROXY_BIN:-}" ]; then echo "$TOXIPROXY_BIN"; exit 0; fi
TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.12.0}"
CACHE="${SCHEMAGATE_CACHE:-$HOME/.cache/schemagate}"
dir="$CACHE/toxiproxy-$TOXIPROXY_VERSION"
if [ ! -x "$dir/toxiproxy-server" ]; then
  command -v go >/dev/null || { echo "build-toxiproxy: Go toolchain not found (needed to build toxiproxy $TOXIPROXY_VERSION)" >&2; exit 1; }
  echo "building toxiproxy $TOXIPROXY_VERSION into $dir" >&2
  mkdir -p "$dir"
  # The server alone: bench/run.py drives it through its HTTP API, so toxiproxy-cli is not needed.
  GOBIN="$dir" GOFLAGS=-buildvcs=false go install \
    "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" >&2
  mv "$dir/server" "$dir/toxiproxy-server"
fi
echo "$dir/toxiproxy-server"
