#!/usr/bin/env bash
# The e2e suite on a real kind cluster: create it, build the operator image, load it, run tests/e2e.
# Needs docker, kind, kubectl, helm and this repo's .venv. NOT exercised by our CI (no Docker there).
#   KIND_CLUSTER   cluster name (default schemagate-e2e); an existing one is reused
#   IMAGE          image tag to build and load (default schemagate:dev)
#   KEEP_CLUSTER=1 leave the cluster running afterwards
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER="${KIND_CLUSTER:-schemagate-e2e}"
IMAGE="${IMAGE:-schemagate:dev}"
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool not found on PATH" >&2; exit 1; }
done
[ -x .venv/bin/python ] || { python3 -m venv .venv; .venv/bin/pip install -q -e '.[test]'; }

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config hack/kind/cluster.yaml --wait 120s
fi
kubeconfig="$(mktemp)"
trap 'rm -f "$kubeconfig"; [ "${KEEP_CLUSTER:-}" = 1 ] || kind delete cluster --name "$CLUSTER"' EXIT
kind get kubeconfig --name "$CLUSTER" >"$kubeconfig"

docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

SCHEMAGATE_E2E_KUBECONFIG="$kubeconfig" SCHEMAGATE_E2E_IMAGE="$IMAGE" \
  .venv/bin/python -m pytest tests/e2e "$@"
