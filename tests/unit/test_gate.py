"""The rollout gate's pure decisions: which pods it holds, what their condition says, status and Events."""

from __future__ import annotations

from typing import Any

import pytest

from schemagate.api import reasons
from schemagate.controller import gate
from schemagate.controller.gate import Schema

AT_1 = Schema("app", current=1, target=1)
MIGRATING = Schema("app", current=1, target=2, progress="Job app-g1-abc is migrating from version 1 to version 2")
STALLED = Schema("app", current=1, target=2, stalled="Job app-g1-abc: 00002_orders.sql: relation \"no_such_table\" "
                                                     "does not exist (SQLSTATE 42P01)")
AT_2 = Schema("app", current=2, target=2)
UNKNOWN = Schema("app", current=None, target=2, unavailable="cannot reach database db:5432/app: timeout")


def decide(the_pod: dict[str, Any], schema: Schema) -> gate.PodDecision | None:
    """A pod whose annotations are its template's (the usual case)."""
    return gate.decide(the_pod, schema, template=the_pod["metadata"]["annotations"])


def pod(name: str = "web-7d9f-abcde", required: str | None = None, gate_status: str | None = None,
        reason: str = "SchemaReady", message: str = "m") -> dict[str, Any]:
    annotations = {gate.REQUIRED_VERSION_ANNOTATION: required} if required is not None else {}
    conditions = [{"type": "Ready", "status": "False"}]
    if gate_status:
        conditions.append({"type": gate.CONDITION, "status": gate_status, "reason": reason, "message": message,
                           "lastTransitionTime": "2026-01-01T00:00:00Z"})
    return {"metadata": {"name": name, "annotations": annotations},
            "spec": {"readinessGates": [{"conditionType": gate.CONDITION}]},
            "status": {"conditions": conditions}}


@pytest.mark.parametrize("the_pod, schema, expected", [
    # Needs what the database has: open, whatever is pending (scale-ups and restarts are not blocked).
    (pod(required="1"), AT_1, ("True", reasons.SCHEMA_READY)),
    (pod(required="1"), MIGRATING, ("True", reasons.SCHEMA_READY)),
    (pod(required="1"), STALLED, ("True", reasons.SCHEMA_READY)),
    (pod(required="1"), AT_2, ("True", reasons.SCHEMA_READY)),  # past it counts
    # Needs more than the database has: held, saying why.
    (pod(required="2"), MIGRATING, ("False", reasons.WAITING_FOR_MIGRATION)),
    (pod(required="2"), STALLED, ("False", reasons.MIGRATION_STALLED)),
    (pod(required="3"), MIGRATING, ("False", reasons.VERSION_NOT_PLANNED)),
    (pod(required="2"), UNKNOWN, ("False", reasons.DATABASE_UNAVAILABLE)),
    (pod(required="two"), AT_2, ("False", reasons.INVALID_REQUIRED_VERSION)),
    (pod(required=" 2 "), AT_2, ("True", reasons.SCHEMA_READY)),
    # No annotation: the SchemaMigration's target.
    (pod(), AT_1, ("True", reasons.SCHEMA_READY)),
    (pod(), MIGRATING, ("False", reasons.WAITING_FOR_MIGRATION)),
    (pod(), Schema("app", current=1, target=None), ("False", reasons.WAITING_FOR_MIGRATION)),
    # A held pod is re-decided; its False is replaced as soon as the database is there.
    (pod(required="2", gate_status="False", reason=reasons.WAITING_FOR_MIGRATION), AT_2, ("True", reasons.SCHEMA_READY)),
    (pod(required="2", gate_status="False", reason=reasons.WAITING_FOR_MIGRATION), STALLED,
     ("False", reasons.MIGRATION_STALLED)),
])
def test_decide(the_pod, schema, expected):
    decision = decide(the_pod, schema)
    assert decision is not None and (decision.status, decision.reason) == expected


@pytest.mark.parametrize("schema", [AT_1, MIGRATING, STALLED, UNKNOWN, Schema("app", current=0, target=None)])
def test_an_open_gate_is_never_closed(schema):
    """Closing it would take a serving pod out of service because a newer migration is pending."""
    assert decide(pod(required="2", gate_status="True"), schema) is None
    assert decide(pod(gate_status="True"), schema) is None
    assert not gate.needs_patch(pod(gate_status="True"), decide(pod(gate_status="True"), schema))


def test_messages_say_what_the_pod_waits_for():
    held = decide(pod(required="2"), STALLED)
    assert held is not None
    assert "needs schema version 2" in held.message and "database is at 1" in held.message
    assert "no_such_table" in held.message and "SchemaMigration app" in held.message
    not_planned = decide(pod(required="3"), MIGRATING)
    assert not_planned is not None and "targets 2" in not_planned.message
    invalid = decide(pod(name="web-1", required="v2"), AT_2)
    assert invalid is not None and "web-1" in invalid.message and gate.REQUIRED_VERSION_ANNOTATION in invalid.message
    unknown = decide(pod(required="2"), UNKNOWN)
    assert unknown is not None and "cannot reach database" in unknown.message
    assert len(decide(pod(required="2"), Schema("app", 1, 2, stalled="x" * 5000)).message) <= gate.MESSAGE_LIMIT


def test_patch_only_when_the_condition_changes():
    decision = decide(pod(required="2"), MIGRATING)
    assert gate.needs_patch(pod(required="2"), decision)
    same = pod(required="2", gate_status="False", reason=decision.reason, message=decision.message)
    assert not gate.needs_patch(same, decision)


def test_condition_patch_merges_by_type_and_keeps_the_transition_time():
    held = pod(required="2", gate_status="False", reason=reasons.WAITING_FOR_MIGRATION)
    still = decide(held, STALLED)
    body = gate.condition_patch(still, gate.condition(held), "2026-02-02T00:00:00Z")
    (cond,) = body["status"]["conditions"]
    assert cond["type"] == gate.CONDITION and cond["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    opened = gate.condition_patch(decide(held, AT_2), gate.condition(held), "2026-02-02T00:00:00Z")
    assert opened["status"]["conditions"][0]["lastTransitionTime"] == "2026-02-02T00:00:00Z"


@pytest.mark.parametrize("spec, gated", [
    ({"readinessGates": [{"conditionType": gate.CONDITION}]}, True),
    ({"readinessGates": [{"conditionType": "other.io/ready"}, {"conditionType": gate.CONDITION}]}, True),
    ({"readinessGates": [{"conditionType": "other.io/ready"}]}, False),
    ({}, False),
    (None, False),
])
def test_is_gated(spec, gated):
    assert gate.is_gated(spec) is gated


@pytest.mark.parametrize("metadata, deployment", [
    ({"labels": {"pod-template-hash": "7d9f"},
      "ownerReferences": [{"kind": "ReplicaSet", "name": "config-server-7d9f", "controller": True}]}, "config-server"),
    ({"labels": {"pod-template-hash": "7d9f"},
      "ownerReferences": [{"kind": "ReplicaSet", "name": "other-abc", "controller": True}]}, None),
    ({"labels": {}, "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9f", "controller": True}]}, None),
    ({"labels": {"pod-template-hash": "7d9f"},
      "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9f", "controller": False}]}, None),
    ({"labels": {"pod-template-hash": "7d9f"},
      "ownerReferences": [{"kind": "StatefulSet", "name": "web-7d9f", "controller": True}]}, None),
    ({"labels": {"pod-template-hash": "7d9f"}}, None),
])
def test_deployment_of(metadata, deployment):
    assert gate.deployment_of(metadata) == deployment


def test_label_selector():
    assert gate.label_selector({"matchLabels": {"b": "2", "a": "1"}}) == "a=1,b=2"
    assert gate.label_selector({"matchLabels": {"app": "x"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "api"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "team", "operator": "Exists"}]}) == "app=x,tier in (web,api),env notin (dev),!canary,team"
    with pytest.raises(ValueError, match="empty"):
        gate.label_selector({})
    with pytest.raises(ValueError, match="Near"):
        gate.label_selector({"matchExpressions": [{"key": "a", "operator": "Near"}]})


def _views(*specs: tuple[str, str, int | None]) -> list[gate.PodView]:
    return [gate.PodView(f"p{i}", status, reason, required) for i, (status, reason, required) in enumerate(specs)]


def test_deployment_status_counts_waiting_pods_and_shows_the_worst_reason():
    entry = gate.deployment_status("web", _views(("True", reasons.SCHEMA_READY, 1), ("False", reasons.WAITING_FOR_MIGRATION, 2),
                                                 ("", "", 3), ("False", reasons.MIGRATION_STALLED, 2)))
    assert entry == {"name": "web", "pods": 4, "waiting": 3, "requiredVersion": 3,
                     "reason": reasons.MIGRATION_STALLED, "message": None}
    assert gate.deployment_status("web", _views(("True", reasons.SCHEMA_READY, 1)))["waiting"] == 0
    assert gate.status({gate.DEPLOYMENT: [entry, gate.deployment_status("api", [], "Deployment ns/api not found")]}
                       )["waiting"] == 3
    # StatefulSets have their own list (a Deployment and a StatefulSet may share a name); waiting sums both
    both = gate.status({gate.DEPLOYMENT: [entry], gate.STATEFUL_SET: [{**entry, "name": "db", "waiting": 2}]})
    assert (both["waiting"], [e["name"] for e in both["statefulSets"]]) == (5, ["db"])
    assert "statefulSets" not in gate.status({gate.DEPLOYMENT: [entry]})


def _entry(waiting: int, reason: str | None = None, required: int | None = 2) -> dict[str, Any]:
    return {"name": "web", "pods": 3, "waiting": waiting, "requiredVersion": required if waiting else None,
            "reason": reason}


def test_events_held_once_then_released():
    held = gate.events(_entry(0), _entry(1, reasons.WAITING_FOR_MIGRATION), MIGRATING, released=0)
    assert [(e.type, e.reason) for e in held] == [("Normal", reasons.ROLLOUT_HELD)]
    assert "schema version 2" in held[0].message and "database at 1" in held[0].message
    # Still waiting for the same reason: no new Event on every reconcile.
    assert gate.events(_entry(1, reasons.WAITING_FOR_MIGRATION), _entry(2, reasons.WAITING_FOR_MIGRATION), MIGRATING, 0) == []
    # The migration failed: the hold is now a Warning carrying the error.
    stalled = gate.events(_entry(1, reasons.WAITING_FOR_MIGRATION), _entry(1, reasons.MIGRATION_STALLED), STALLED, 0)
    assert [(e.type, e.reason) for e in stalled] == [("Warning", reasons.ROLLOUT_HELD)]
    assert "no_such_table" in stalled[0].message
    released = gate.events(_entry(1, reasons.MIGRATION_STALLED), _entry(0), AT_2, released=1)
    assert [(e.type, e.reason) for e in released] == [("Normal", reasons.ROLLOUT_RELEASED)]
    assert "version 2" in released[0].message
    # Waiting pods deleted (rollout undone): nothing was released.
    assert gate.events(_entry(1, reasons.WAITING_FOR_MIGRATION), _entry(0), MIGRATING, released=0) == []
    # A pod decided at once (database already there): neither held nor released.
    assert gate.events(_entry(0), _entry(0), AT_2, released=1) == []
    assert gate.events(None, _entry(0), AT_2, released=2) == []


def test_misconfiguration_is_a_warning_once():
    problem = "the pod template of Deployment shop/web has no readinessGates entry"
    new = {**_entry(0), "message": problem}
    assert [(e.type, e.reason) for e in gate.events(_entry(0), new, AT_1, 0)] == [
        ("Warning", reasons.ROLLOUT_GATE_MISCONFIGURED)]
    assert gate.events(new, new, AT_1, 0) == []


def test_conflict_holds_no_pod_and_says_who_else_names_the_deployment():
    entry = gate.deployment_status("web", _views(("", "", 2), ("True", reasons.SCHEMA_READY, 1)),
                                   gate.conflict_message("shop", "web", ["b", "a"]), conflict=True)
    assert entry["reason"] == reasons.GATE_CONFLICT and entry["waiting"] == 1
    assert "SchemaMigration a, b" in entry["message"]
    # Only the misconfiguration Warning, no "held for schema version" story.
    assert [e.reason for e in gate.events(None, entry, AT_1, 0)] == [reasons.ROLLOUT_GATE_MISCONFIGURED]


RS = {"metadata": {"name": "web-7d9f", "uid": "rs-1",
                   "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "d-1", "controller": True}]},
      "spec": {"template": {"metadata": {"annotations": {gate.REQUIRED_VERSION_ANNOTATION: "3"}}}}}
DEPLOYMENT = {"metadata": {"name": "web", "uid": "d-1"}}
POD_META = {"name": "web-7d9f-x", "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9f", "uid": "rs-1",
                                                       "controller": True}]}


def _with(obj: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], **meta}}


@pytest.mark.parametrize("replicaset, pod_meta, deployment, ours", [
    (RS, POD_META, DEPLOYMENT, True),
    # a ReplicaSet of the same name re-created (another UID) is not the pod's controller
    (_with(RS, uid="rs-2"), POD_META, DEPLOYMENT, False),
    # a Deployment of the same name re-created, or a ReplicaSet someone else controls
    (RS, POD_META, _with(DEPLOYMENT, uid="d-2"), False),
    (_with(RS, ownerReferences=[{"kind": "Deployment", "name": "web", "uid": "d-1", "controller": False}]),
     POD_META, DEPLOYMENT, False),
    (_with(RS, ownerReferences=[]), POD_META, DEPLOYMENT, False),
    (RS, {**POD_META, "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9f", "controller": True}]},
     DEPLOYMENT, False),
])
def test_the_template_counts_only_along_controller_references_checked_by_uid(replicaset, pod_meta, deployment, ours):
    template = gate.template_of(replicaset, pod_meta, deployment)
    assert (template == {gate.REQUIRED_VERSION_ANNOTATION: "3"}) if ours else template is None


def test_the_needed_version_is_the_templates_not_the_live_pods():
    """`kubectl patch pod` (no pods/status right) setting the annotation to 0 opens nothing."""
    template = {gate.REQUIRED_VERSION_ANNOTATION: "2"}
    lowered = pod(required="0")
    decision = gate.decide(lowered, AT_1, template)
    assert decision is not None and (decision.status, decision.reason, decision.required) == (
        "False", reasons.ANNOTATION_MISMATCH, 2)
    assert "differs from its pod template" in decision.message
    # added to a pod whose template has none, or removed from one whose template has it: held too
    assert gate.decide(pod(required="0"), AT_1, {}).reason == reasons.ANNOTATION_MISMATCH
    assert gate.decide(pod(), AT_2, template).reason == reasons.ANNOTATION_MISMATCH
    assert gate.decide(pod(required="2"), AT_2, template).status == "True"


STS = {"metadata": {"name": "db", "uid": "s-1"}}
REVISION = {"metadata": {"name": "db-5f7c", "ownerReferences": [{"kind": "StatefulSet", "name": "db", "uid": "s-1",
                                                                 "controller": True}]},
            "data": {"spec": {"template": {"$patch": "replace", "metadata": {
                "annotations": {gate.REQUIRED_VERSION_ANNOTATION: "3"}}}}}}
STS_POD_META = {"name": "db-0", "labels": {gate.REVISION_LABEL: "db-5f7c"},
                "ownerReferences": [{"kind": "StatefulSet", "name": "db", "uid": "s-1", "controller": True}]}


@pytest.mark.parametrize("revision, pod_meta, statefulset, ours", [
    (REVISION, STS_POD_META, STS, True),
    # the StatefulSet re-created under the same name (another UID): neither pod nor revision is its
    (REVISION, STS_POD_META, _with(STS, uid="s-2"), False),
    # a revision controlled by another StatefulSet, or by none
    (_with(REVISION, ownerReferences=[{"kind": "StatefulSet", "name": "db", "uid": "s-9", "controller": True}]),
     STS_POD_META, STS, False),
    (_with(REVISION, ownerReferences=[]), STS_POD_META, STS, False),
    # the pod's label names another revision than the one read
    (REVISION, {**STS_POD_META, "labels": {gate.REVISION_LABEL: "db-0000"}}, STS, False),
    (REVISION, {**STS_POD_META, "labels": {}}, STS, False),
    # the pod is not the StatefulSet's (by UID)
    (REVISION, {**STS_POD_META, "ownerReferences": [{"kind": "StatefulSet", "name": "db", "uid": "s-2",
                                                     "controller": True}]}, STS, False),
])
def test_a_statefulset_pods_template_is_its_controllerrevisions_checked_by_uid(revision, pod_meta, statefulset,
                                                                                ours):
    template = gate.revision_template_of(revision, pod_meta, statefulset)
    assert (template == {gate.REQUIRED_VERSION_ANNOTATION: "3"}) if ours else template is None


@pytest.mark.parametrize("metadata, workload", [
    ({"labels": {"pod-template-hash": "7d9f"},
      "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9f", "controller": True}]}, ("Deployment", "web")),
    ({"labels": {gate.REVISION_LABEL: "db-5f7c"},
      "ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": True}]}, ("StatefulSet", "db")),
    ({"ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": False}]}, None),
    ({"ownerReferences": [{"kind": "DaemonSet", "name": "agent", "controller": True}]}, None),
])
def test_workload_of(metadata, workload):
    assert gate.workload_of(metadata) == workload


def test_release_opens_a_held_pod_and_says_no_schema_was_checked():
    for held in (pod(required="2"), pod(required="2", gate_status="False")):
        decision = gate.release(held, "StatefulSet shop/db", migration="app", why="removed from its spec.rolloutGate")
        assert decision is not None and (decision.status, decision.reason) == ("True", reasons.GATE_REMOVED)
        assert "StatefulSet shop/db is no longer gated by SchemaMigration app" in decision.message
        assert "without checking the schema" in decision.message
    assert gate.release(pod(required="2", gate_status="True"), "StatefulSet shop/db", migration="app",
                        why="x") is None
    event = gate.released_event("StatefulSet shop/db", migration="app", why="the SchemaMigration was deleted",
                                released=2)
    assert (event.type, event.reason) == ("Warning", reasons.ROLLOUT_GATE_REMOVED)
    assert "2 held pod(s)" in event.message and "deleted" in event.message


def test_rollout_gate_names_deployments_or_statefulsets_but_something():
    from pydantic import ValidationError

    from schemagate.api import v1alpha1 as api

    spec = api.RolloutGateSpec.model_validate({"statefulSets": ["config-store"]})
    assert (spec.deployments, spec.stateful_sets) == ([], ["config-store"])
    with pytest.raises(ValidationError, match="at least one Deployment or StatefulSet"):
        api.RolloutGateSpec.model_validate({})
    rule = api.RolloutGateSpec.model_json_schema()["x-kubernetes-validations"][0]["rule"]
    assert "statefulSets" in rule and "deployments" in rule
