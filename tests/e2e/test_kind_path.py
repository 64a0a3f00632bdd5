"""The kind path (hack/kind-e2e.sh): the e2e suite really targets the kind cluster it was given.

This is the only test allowed to skip: our CI has no Docker, so no kind cluster is ever given there, and
the skip says so in every run's summary rather than letting the path look tested.
"""

from __future__ import annotations

import json
import os

import pytest

from kube_fixtures import Kube


def test_suite_runs_against_the_given_kind_cluster(request: pytest.FixtureRequest) -> None:
    if not os.environ.get("SCHEMAGATE_E2E_KUBECONFIG"):
        pytest.skip("kind path not exercised: no kind cluster given (hack/kind-e2e.sh sets "
                    "SCHEMAGATE_E2E_KUBECONFIG); this run used the local single-node cluster")
    kube: Kube = request.getfixturevalue("kube")
    assert not kube.local, "an external kubeconfig was given, yet the local cluster is in use"
    nodes = json.loads(kube.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    provider_ids = [n["spec"].get("providerID", "") for n in nodes]
    assert provider_ids and all(p.startswith("kind://") for p in provider_ids), (
        f"SCHEMAGATE_E2E_KUBECONFIG does not point at a kind cluster (node providerIDs: {provider_ids})")
    assert kube.image, "SCHEMAGATE_E2E_IMAGE names the operator image loaded into kind"
