#!/usr/bin/env bash
# The one test command (README): installs what the tests need on a fresh machine, reuses it when
# cached, then runs every tier — unit, database, control plane, e2e. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export SCHEMAGATE_CACHE="${SCHEMAGATE_CACHE:-$HOME/.cache/schemagate}"

step() { printf '\n== %s\n' "$*" >&2; }

step "PostgreSQL (Debian packages)"
hack/install-postgres.sh

step "Python environment (.venv)"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

step "goose (Go module proxy, cached in $SCHEMAGATE_CACHE)"
GOOSE_BIN="$(hack/build-goose.sh)"; export GOOSE_BIN

step "Kubernetes control plane, kubectl, helm (Go module proxy, cached in $SCHEMAGATE_CACHE)"
KUBEBUILDER_ASSETS="$(hack/build-k8s.sh)"; export KUBEBUILDER_ASSETS

step "pytest"
exec .venv/bin/python -m pytest "$@"
