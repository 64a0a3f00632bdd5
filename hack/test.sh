#!/usr/bin/env bash
# The one test command (README): installs what the tests need on a fresh machine, reuses it when
# cached, then runs every tier — unit, database, cluster (a real node), e2e, charts. Extra arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export SCHEMAGATE_CACHE="${SCHEMAGATE_CACHE:-$HOME/.cache/schemagate}"

started=$SECONDS
step() { printf '\n== [%dm%02ds] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*" >&2; }

# The Go builds (goose, toxiproxy, Kubernetes: most of a cold run) need only the Go toolchain and the
# module proxy, and keep the CPU busy while the steps below mostly wait on apt, pip and debootstrap; so
# they run beside them, their output kept until they are waited for. Each prints its binary's path.
go_builds="$(mktemp -d)"
# setsid: its own process group, so a step that fails first takes the builds (go and its compilers) down.
# shellcheck disable=SC2016
setsid bash -c 'for b in goose toxiproxy k8s; do
  hack/"build-$b.sh" >"$1/$b.out" 2>>"$1/log" || { echo "$b" >"$1/failed"; exit 1; }
done' go-builds "$go_builds" &
go_pid=$!
trap 'kill -- -"$go_pid" 2>/dev/null || true; rm -rf "$go_builds"' EXIT
# The Go builds' output, and the path each printed (exits when one of them failed).
go_built() {
  local rc=0
  wait "$go_pid" || rc=$?
  [ -s "$go_builds/log" ] && cat "$go_builds/log" >&2
  if [ "$rc" != 0 ]; then echo "hack/build-$(cat "$go_builds/failed" 2>/dev/null || echo go).sh failed (above)" >&2; exit 1; fi
  GOOSE_BIN="$(cat "$go_builds/goose.out")" TOXIPROXY_BIN="$(cat "$go_builds/toxiproxy.out")"
  KUBEBUILDER_ASSETS="$(cat "$go_builds/k8s.out")"
  export GOOSE_BIN TOXIPROXY_BIN KUBEBUILDER_ASSETS
}

step "PostgreSQL (Debian packages)"
hack/install-postgres.sh

step "The node's packages: containerd, runc, CNI plugins, buildah, debootstrap (Debian packages)"
hack/install-node.sh

step "podman and docker-compose, for the compose example's test (Debian packages)"
hack/install-compose.sh

step "Python environment (.venv)"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

step "Our image from Dockerfile, with buildah on a Debian bookworm made by debootstrap (cached by its inputs)"
.venv/bin/python -m devenv.images schemagate >&2

step "goose, toxiproxy (the bench's latency proxy), Kubernetes (control plane, kubelet, kube-proxy), CoreDNS, kubectl, helm (Go module proxy, cached in $SCHEMAGATE_CACHE; built since the start)"
go_built

step "ruff and mypy --strict over operator/ (rules and reasons in pyproject.toml)"
.venv/bin/python -m ruff check operator/
.venv/bin/python -m mypy --strict operator/

# Most of the suite waits on the cluster, not the CPU: workers share one cluster and one operator, a test
# that stops what they share runs alone (tests/shared_cluster.py). The tests that start a cluster of their
# own run after, in one process. SCHEMAGATE_TEST_WORKERS=0 runs everything in one process, in order.
workers="${SCHEMAGATE_TEST_WORKERS:-3}"
if [ "$workers" = 0 ]; then
  step "pytest"
  rc=0; .venv/bin/python -m pytest "$@" || rc=$?
  exit "$rc"
fi
# pytest's 5: nothing was selected in that phase (a -k or a path may pick only one of them).
phase() { local rc=0; "$@" || rc=$?; [ "$rc" = 5 ] && rc=0; return "$rc"; }
step "pytest, on $workers workers sharing one cluster (pytest-xdist)"
rc=0; phase .venv/bin/python -m pytest -n "$workers" --dist worksteal "$@" || rc=$?
step "pytest: the tests that start a cluster of their own (owns_machine), the session's cluster stopped"
rc_own=0; SCHEMAGATE_PHASE=owns_machine phase .venv/bin/python -m pytest "$@" || rc_own=$?
[ "$rc" = 0 ] && rc="$rc_own"
exit "$rc"
