"""No confused deputy: a SchemaMigration's author gets only the images, ServiceAccounts and backup claims
the installer allowed; anything else is Stalled with a reason of its own and nothing is created."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client import V1ObjectMeta, V1PersistentVolumeClaim
from kubernetes.client.exceptions import ApiException

from schemagate.controller import allow
from schemagate.controller.jobs import JobRequest, render_job
from schemagate.controller.config import Options
from schemagate.controller.reconcile import reconcile
from schemagate.kube import Clients
from tests.unit.conftest import job_request, smig_spec

RUNNER = "ghcr.io/acme/schemagate@sha256:" + "a" * 64
ALLOW = allow.Allowlist(job_image=RUNNER, job_service_account="schemagate-migration")
OBJ = {"metadata": {"name": "app", "namespace": "team", "uid": "u-1", "generation": 1}}


spec = smig_spec


@pytest.mark.parametrize("over", [
    {},
    {"job": {"image": RUNNER}},
    {"job": {"serviceAccountName": "schemagate-migration"}},
])
def test_the_installers_defaults_are_allowed(over):
    assert allow.check(spec(**over), ALLOW) is None


@pytest.mark.parametrize("over,reason,names", [
    ({"job": {"image": "evil/pwn:1"}}, "ImageNotAllowed", "spec.job.image 'evil/pwn:1'"),
    # a tag of the allowed repository is not the allowed digest
    ({"job": {"image": "ghcr.io/acme/schemagate:latest"}}, "ImageNotAllowed", "spec.job.image"),
    ({"source": {"image": {"image": "busybox:1.36"}}}, "ImageNotAllowed", "spec.source.image.image 'busybox:1.36'"),
    ({"job": {"serviceAccountName": "sg-schemagate"}}, "ServiceAccountNotAllowed",
     "spec.job.serviceAccountName 'sg-schemagate'"),
    # with a job ServiceAccount configured, the namespace's default is not a way around it
    ({"job": {"serviceAccountName": "default"}}, "ServiceAccountNotAllowed", "'default'"),
])
def test_anything_else_is_refused_naming_the_value_and_where_an_admin_allows_it(over, reason, names):
    refusal = allow.check(spec(**over), ALLOW)
    assert refusal is not None and refusal.reason == reason
    assert names in refusal.message
    assert "schemagate chart's jobs.allowed" in refusal.message and "--allow-" in refusal.message
    assert "nothing was created" in refusal.message


def test_an_admin_allows_more_images_and_service_accounts():
    more = allow.Allowlist(RUNNER, images=("busybox@sha256:" + "b" * 64,), service_accounts=("migrator",),
                           job_service_account="schemagate-migration")
    assert allow.check(spec(source={"image": {"image": "busybox@sha256:" + "b" * 64}},
                            job={"serviceAccountName": "migrator"}), more) is None


def test_without_a_job_service_account_the_namespaces_default_is_the_one_allowed():
    bare = allow.Allowlist(RUNNER)
    assert allow.check(spec(), bare) is None
    assert allow.check(spec(job={"serviceAccountName": "default"}), bare) is None
    assert allow.check(spec(job={"serviceAccountName": "builder"}), bare).reason == "ServiceAccountNotAllowed"


@pytest.mark.parametrize("labels,allowed", [
    ({"schemagate.io/backup": "true"}, True),
    ({"schemagate.io/backup": "false"}, False),
    (None, False),
])
def test_a_backup_claim_must_be_labelled_by_its_owner(labels, allowed):
    refusal = allow.check_claim("team", "pgdata", labels, ALLOW)
    assert (refusal is None) is allowed
    if refusal:
        assert refusal.reason == "BackupClaimNotAllowed"
        assert "team/pgdata" in refusal.message and "kubectl -n team label pvc pgdata schemagate.io/backup=true" \
            in refusal.message


def test_backup_claim_label_is_key_equals_value():
    with pytest.raises(ValueError, match="key=value"):
        allow.parse_label("schemagate.io/backup")


def _request(**over: Any) -> JobRequest:
    return job_request(**{"default_image": RUNNER, **over})


def test_a_backup_claim_is_not_reowned_when_its_root_already_has_the_group():
    pod = render_job(OBJ, spec(backup={"claimName": "b"}), _request(backup_file="x.dump"))["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == 65532
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"


def test_a_job_without_a_service_account_runs_as_the_installers():
    pod = render_job(OBJ, spec(), _request(service_account="schemagate-migration"))["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "schemagate-migration"
    pod = render_job(OBJ, spec(job={"serviceAccountName": "migrator"}),
                     _request(service_account="schemagate-migration"))["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "migrator"


class World:
    """Stub clients: what the reconcile reads, and a record of everything it writes."""

    def __init__(self, body: dict[str, Any], claim_labels: dict[str, str] | None = None):
        self.body = body
        self.claim_labels = claim_labels
        self.created: list[Any] = []
        self.status: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []
        self.reads: list[str] = []

    def clients(self) -> Clients:
        w = self

        class Custom:
            def get_namespaced_custom_object(self, *_: Any) -> dict[str, Any]:
                return w.body

            def patch_namespaced_custom_object_status(self, *args: Any) -> None:
                w.status = args[-1]["status"]

        class Core:
            def read_namespaced_persistent_volume_claim(self, name: str, namespace: str) -> Any:
                w.reads.append(f"pvc/{name}")
                if w.claim_labels is None:
                    raise ApiException(status=404)
                return V1PersistentVolumeClaim(metadata=V1ObjectMeta(name=name, labels=w.claim_labels))

            def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> None:
                w.events.append(body)

            def __getattr__(self, name: str) -> Any:  # any other read: the reconcile went too far
                raise AssertionError(f"unexpected call core.{name}")

        class Batch:
            def create_namespaced_job(self, namespace: str, body: Any) -> None:
                w.created.append(body)

            def __getattr__(self, name: str) -> Any:
                raise AssertionError(f"unexpected call batch.{name}")

        return SimpleNamespace(custom=Custom(), core=Core(), batch=Batch(), coordination=None)  # type: ignore


def _object(**over: Any) -> dict[str, Any]:
    return {"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration",
            "metadata": {"name": "app", "namespace": "team", "uid": "u-1", "generation": 1},
            "spec": {"database": {"secretRef": {"name": "db"}}, "source": {"configMaps": ["m"]}, **over}}


OPTS = Options(job_image=RUNNER, job_service_account="schemagate-migration")


@pytest.mark.parametrize("over,claim,reason", [
    ({"job": {"image": "evil/pwn:1"}}, None, "ImageNotAllowed"),
    ({"source": {"image": {"image": "alpine:3"}}}, None, "ImageNotAllowed"),
    ({"job": {"serviceAccountName": "sg-schemagate"}}, None, "ServiceAccountNotAllowed"),
    ({"backup": {"claimName": "pgdata"}}, {"app": "postgres"}, "BackupClaimNotAllowed"),
    ({"backup": {"claimName": "missing"}}, None, "BackupClaimNotAllowed"),
])
def test_a_hostile_spec_is_stalled_and_nothing_is_created_or_read(over, claim, reason):
    world = World(_object(**over), claim)
    reconcile(world.clients(), "team", "app", OPTS)
    assert world.created == []
    stalled = next(c for c in world.status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", reason)
    assert world.status["phase"] == "Failed"
    assert [e["reason"] for e in world.events] == [reason]


def test_cluster_wide_a_namespace_not_granted_is_told_so_and_nothing_is_read():
    world = World(_object(), None)
    reconcile(world.clients(), "team", "app", Options(job_image=RUNNER, act_namespaces=("billing",)))
    stalled = next(c for c in world.status["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "NamespaceNotAllowed" and "watch.namespaces" in stalled["message"]
    assert world.created == [] and world.reads == []
