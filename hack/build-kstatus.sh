#!/usr/bin/env bash
# Builds hack/kstatus (kstatus from sigs.k8s.io/cli-utils, what Flux and kstatus-based waits read) from
# the Go module proxy, once per source, into a cache outside the repo. Prints the binary's path.
# KSTATUS_BIN skips the build.
set -euo pipefail
if [ -n "${KSTATUS_BIN:-}" ]; then echo "$KSTATUS_BIN"; exit 0; fi
src="$(cd "$(dirname "$0")/kstatus" && pwd)"
CACHE="${SCHEMAGATE_CACHE:-$HOME/.cache/schemagate}"
# Keyed on the sources: an edited main.go or go.sum builds anew instead of running a stale binary.
key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
dir="$CACHE/kstatus-cli-utils-v0.37.2-$key"
if [ ! -x "$dir/kstatus" ]; then
  command -v go >/dev/null || { echo "build-kstatus: Go toolchain not found (needed to build $src)" >&2; exit 1; }
  echo "building kstatus into $dir" >&2
  mkdir -p "$dir"
  (cd "$src" && GOFLAGS="-buildvcs=false -mod=readonly" go build -o "$dir/kstatus.tmp" . >&2)
  mv "$dir/kstatus.tmp" "$dir/kstatus"
fi
echo "$dir/kstatus"
