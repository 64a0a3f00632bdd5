#!/usr/bin/env bash
# Builds the real goose CLI (the judge of our compatibility) from the Go module proxy, once, into a
# versioned cache outside the repo. Prints the binary's path. GOOSE_BIN skips the build.
set -euo pipefail
if [ -n "${GOOSE_BIN:-}" ]; then echo "$GOOSE_BIN"; exit 0; fi
GOOSE_VERSION="${GOOSE_VERSION:-v3.27.3}"
CACHE="${SCHEMAGATE_CACHE:-$HOME/.cache/schemagate}"
dir="$CACHE/goose-$GOOSE_VERSION"
if [ ! -x "$dir/goose" ]; then
  command -v go >/dev/null || { echo "build-goose: Go toolchain not found (needed to build goose $GOOSE_VERSION)" >&2; exit 1; }
  echo "building goose $GOOSE_VERSION into $dir" >&2
  mkdir -p "$dir"
  # Only the postgres driver is needed; the tags drop the others and most of the build time.
  GOBIN="$dir" GOFLAGS=-buildvcs=false go install \
    -tags 'no_clickhouse no_libsql no_mssql no_mysql no_sqlite3 no_vertica no_ydb no_turso no_starrocks' \
    "github.com/pressly/goose/v3/cmd/goose@$GOOSE_VERSION" >&2
fi
echo "$dir/goose"
