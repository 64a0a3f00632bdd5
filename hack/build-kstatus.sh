#!/usr/bin/env bash
# Builds hack/kstatus (kstatus from sigs.k8s.io/cli-utils, what Flux and kstatus-based waits read) from
# the Go module proxy, once per source, into a cache outside the repo. Prints the binary's path.
# KSTATUS_BIN skips the build.
set -euo pipefail
. "$(dirname "$0")/go-program.sh"
build_go_program kstatus kstatus-cli-utils-v0.37.2 "${KSTATUS_BIN:-}"
