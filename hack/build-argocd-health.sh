#!/usr/bin/env bash
# Builds hack/argocd-health (Argo CD health.lua runner on gopher-lua, the Lua engine Argo CD uses) from
# the Go module proxy, once per source, into a cache outside the repo. Prints the binary's path.
# ARGOCD_HEALTH_BIN skips the build.
set -euo pipefail
. "$(dirname "$0")/go-program.sh"
build_go_program argocd-health argocd-health-gopher-lua-v1.1.2 "${ARGOCD_HEALTH_BIN:-}"
