"""The schemagate chart's ValidatingAdmissionPolicies on the real apiserver: a SchemaMigration naming an
image or ServiceAccount the installer did not allow is refused before the operator sees it, and the
migration ServiceAccount cannot take a Lease that is not schemagate's."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from kube_fixtures import Kube

pytestmark = pytest.mark.cluster
CHART = Path(__file__).resolve().parents[2] / "charts" / "schemagate"
ALLOWED_IMAGE = "registry.example/migrations@sha256:" + "d" * 64


@pytest.fixture
def policy(kube: Kube, namespace: str) -> Iterator[str]:
    """The chart installed for `namespace` (its policies only matter here); uninstalled afterwards."""
    kube.kubectl("apply", "-f", str(CHART.parent.parent / "crds"))
    ops = f"adm-{uuid.uuid4().hex[:6]}"
    release = f"adm{uuid.uuid4().hex[:4]}"
    kube.helm("install", release, str(CHART), "-n", ops, "--create-namespace",
              "--set", f"watch.namespaces={{{namespace}}}", "--set", f"jobs.allowedImages={{{ALLOWED_IMAGE}}}",
              "--set", "jobs.allowedServiceAccounts={migrator}", "--set", "operator.resyncSeconds=3600")
    # Admission policies take effect once the apiserver has compiled them.
    time.sleep(3)
    yield namespace
    kube.helm("uninstall", release, "-n", ops, "--wait", check=False)
    kube.kubectl("delete", "namespace", ops, "--wait=false", check=False)


def create(kube: Kube, namespace: str, doc: dict[str, Any], *extra: str) -> tuple[int, str]:
    proc = kube.kubectl("-n", namespace, "create", "-f", "-", *extra, input=json.dumps(doc), check=False)
    return proc.returncode, proc.stderr


def smig(job: dict[str, Any] | None = None, source: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"database": {"secretRef": {"name": "db"}}, "source": source or {"configMaps": ["m"]}}
    if job:
        spec["job"] = job
    return {"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration",
            "metadata": {"name": f"m-{uuid.uuid4().hex[:8]}"}, "spec": spec}


@pytest.mark.parametrize("job, source, refused", [
    (None, None, None),
    ({"image": ALLOWED_IMAGE}, None, None),
    ({"serviceAccountName": "migrator"}, None, None),
    ({"serviceAccountName": "schemagate-migration"}, None, None),
    ({"image": "evil.example/pwn:1"}, None, "spec.job.image evil.example/pwn:1 is not an allowed runner image"),
    (None, {"image": {"image": "busybox:1.36", "path": "/m"}}, "spec.source.image.image busybox:1.36 is not an allowed image"),
    ({"serviceAccountName": "default"}, None, "spec.job.serviceAccountName default is not an allowed ServiceAccount"),
])
def test_the_apiserver_refuses_what_the_installer_did_not_allow(kube: Kube, policy: str, job: Any, source: Any,
                                                                refused: str | None):
    code, err = create(kube, policy, smig(job, source))
    if refused is None:
        assert code == 0, err
    else:
        assert code != 0 and refused in err and "jobs.allowed" in err, err


def test_the_migration_service_account_may_take_only_schemagates_leases(kube: Kube, policy: str):
    who = f"--as=system:serviceaccount:{policy}:schemagate-migration"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "x"}}
    code, err = create(kube, policy, {**lease, "metadata": {"name": "other-controller-leader"}}, who)
    assert code != 0 and "Lease" in err, err
    code, err = create(kube, policy, {**lease, "metadata": {"name": "schemagate-db-0123456789abcdef"}}, who)
    assert code == 0, err
