#!/usr/bin/env bash
# Builds hack/argocd-health (Argo CD health.lua runner on gopher-lua, the Lua engine Argo CD uses) from
# the Go module proxy, once per source, into a cache outside the repo. Prints the binary's path.
# ARGOCD_HEALTH_BIN skips the build.
set -euo pipefail
if [ -n "${ARGOCD_HEALTH_BIN:-}" ]; then echo "$ARGOCD_HEALTH_BIN"; exit 0; fi
src="$(cd "$(dirname "$0")/argocd-health" && pwd)"
CACHE="${SCHEMAGATE_CACHE:-$HOME/.cache/schemagate}"
# Keyed on the sources: an edited main.go or go.sum builds anew instead of running a stale binary.
key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
dir="$CACHE/argocd-health-gopher-lua-v1.1.2-$key"
if [ ! -x "$dir/argocd-health" ]; then
  command -v go >/dev/null || { echo "build-argocd-health: Go toolchain not found (needed to build $src)" >&2; exit 1; }
  echo "building argocd-health into $dir" >&2
  mkdir -p "$dir"
  (cd "$src" && GOFLAGS="-buildvcs=false -mod=readonly" go build -o "$dir/argocd-health.tmp" . >&2)
  mv "$dir/argocd-health.tmp" "$dir/argocd-health"
fi
echo "$dir/argocd-health"
