"""Bad inputs the apiserver lets through (or let through before the CRD refused them) still get a status
that names what is wrong, through the real reconcile (tests/unit/reconcile_world.py)."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from schemagate.api import crd
from schemagate.controller import observe, policy
from schemagate.controller.plan_lint import Finding
from schemagate.controller.reconcile import reconcile

from tests.unit.reconcile_world import NS, OPTS, World

LONG = "config-server-migrations-for-the-eu-west-production-tenant-database"  # 67 characters


def test_a_name_longer_than_a_label_value_is_stalled_naming_the_limit_not_left_without_status(monkeypatch):
    assert len(LONG) > 63
    world = World(monkeypatch)
    world.object["metadata"]["name"] = LONG

    def list_jobs(_batch, _core, _ns, name, *_a, **_k):
        # What the apiserver answers a label selector whose value is longer than 63 characters.
        if len(name) > 63:
            raise ApiException(status=400, reason=f"values[0][schemagate.io/migration]: Invalid value: {name!r}: "
                                                  f"must be no more than 63 bytes")
        return []

    monkeypatch.setattr(observe, "jobs", list_jobs)
    reconcile(world.clients(), NS, LONG, OPTS)
    stalled = next(c for c in world.status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert "metadata.name must be at most 63 characters" in stalled["message"] and "has 67" in stalled["message"]
    assert world.jobs == {}


def test_the_crd_refuses_such_a_name_at_apply():
    schema = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert {"rule": "size(self.metadata.name) <= 63",
            "message": "metadata.name must be at most 63 characters: it is the value of the schemagate.io/migration "
                       "label on the migration Jobs"} in schema["x-kubernetes-validations"]


def test_a_job_the_apiserver_refuses_is_told_once_by_its_own_warning_not_by_lint_events_every_resync(monkeypatch):
    # spec.job.nodeSelector: any string passes the CRD, the Job's validation refuses "bad key" (422).
    world = World(monkeypatch, spec={"job": {"nodeSelector": {"bad key": "x"}}})
    clients = world.clients()

    def refuse(namespace, body):
        raise ApiException(status=422, reason="Unprocessable Entity")

    clients.batch.create_namespaced_job = refuse
    # A lint finding on the plan: before, status.plan was not kept when the Job could not be created, so
    # every resync found a "new" plan and posted its LintFindings Warning again; and that Warning hid the
    # Stalled one, so JobRejected was never posted at all.
    monkeypatch.setattr(policy.lint_mod, "writing_rules", lambda planned, exclude: [
        Finding(planned[0].name, 2, "warning", "require-idempotent-ddl", "CREATE TABLE without IF NOT EXISTS")])
    for _ in range(3):
        reconcile(clients, NS, "app", OPTS)
    stalled = next(c for c in world.status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "JobRejected")
    warnings = [e["reason"] for e in world.events if e["type"] == "Warning"]
    assert warnings.count("LintFindings") == 1 and warnings.count("JobRejected") == 1, warnings
    assert world.status["plan"]["lint"], "the plan that could not start is shown, with its findings"
