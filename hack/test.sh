#!/usr/bin/env bash
# The one test command (README): installs what the tests need on a fresh machine, reuses it when
# cached, then runs every tier — unit, database, cluster (a real node), e2e, charts. Extra arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export SCHEMAGATE_CACHE="${SCHEMAGATE_CACHE:-$HOME/.cache/schemagate}"

step() { printf '\n== %s\n' "$*" >&2; }

step "PostgreSQL (Debian packages)"
hack/install-postgres.sh

step "The node's packages: containerd, runc, CNI plugins, buildah, debootstrap (Debian packages)"
hack/install-node.sh

step "podman and docker-compose, for the compose example's test (Debian packages)"
hack/install-compose.sh

step "Python environment (.venv)"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

step "goose (Go module proxy, cached in $SCHEMAGATE_CACHE)"
GOOSE_BIN="$(hack/build-goose.sh)"; export GOOSE_BIN

step "toxiproxy, the latency proxy of the bench (Go module proxy, cached in $SCHEMAGATE_CACHE)"
TOXIPROXY_BIN="$(hack/build-toxiproxy.sh)"; export TOXIPROXY_BIN

step "Kubernetes (control plane, kubelet, kube-proxy), CoreDNS, kubectl, helm (Go module proxy, cached in $SCHEMAGATE_CACHE)"
KUBEBUILDER_ASSETS="$(hack/build-k8s.sh)"; export KUBEBUILDER_ASSETS

step "Our image from Dockerfile, with buildah on a Debian bookworm made by debootstrap (cached by its inputs)"
.venv/bin/python -m devenv.images schemagate >&2

step "ruff and mypy --strict over operator/ (rules and reasons in pyproject.toml)"
.venv/bin/python -m ruff check operator/
.venv/bin/python -m mypy --strict operator/

step "pytest"
exec .venv/bin/python -m pytest "$@"
