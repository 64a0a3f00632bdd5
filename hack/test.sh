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

# Most of the suite waits on the cluster, not the CPU: workers share one cluster and one operator, a test
# that stops what they share runs alone (tests/shared_cluster.py). The tests that start a cluster of their
# own run after, in one process. SCHEMAGATE_TEST_WORKERS=0 runs everything in one process, in order.
workers="${SCHEMAGATE_TEST_WORKERS:-3}"
if [ "$workers" = 0 ]; then
  step "pytest"
  exec .venv/bin/python -m pytest "$@"
fi
# pytest's 5: nothing was selected in that phase (a -k or a path may pick only one of them).
phase() { local rc=0; "$@" || rc=$?; [ "$rc" = 5 ] && rc=0; return "$rc"; }
step "pytest, on $workers workers sharing one cluster (pytest-xdist)"
rc=0; phase .venv/bin/python -m pytest -n "$workers" --dist worksteal "$@" || rc=$?
step "pytest: the tests that start a cluster of their own (owns_machine), the session's cluster stopped"
rc_own=0; SCHEMAGATE_PHASE=owns_machine phase .venv/bin/python -m pytest "$@" || rc_own=$?
[ "$rc" = 0 ] && rc="$rc_own"
exit "$rc"
