"""The rollout gate's kopf wiring: the Deployment → SchemaMigration index and the pod events it routes."""

from __future__ import annotations

import asyncio
from typing import Any

from schemagate.controller import gate, gate_handlers


def test_index_maps_each_named_workload_to_its_schemamigration():
    spec = {"rolloutGate": {"deployments": ["web", "worker"], "statefulSets": ["web"]}}
    assert gate_handlers.gated_workloads(namespace="shop", name="app", spec=spec) == {
        ("shop", "Deployment", "web"): "app", ("shop", "Deployment", "worker"): "app",
        ("shop", "StatefulSet", "web"): "app"}
    assert gate_handlers.gated_workloads(namespace="shop", name="app", spec={}) == {}
    assert gate_handlers.gated_workloads(namespace="shop", name="app", spec={"rolloutGate": {"deployments": "web"}}) == {}


class FakeController:
    def __init__(self) -> None:
        self.triggered: list[tuple[str, str]] = []

    def trigger(self, namespace: str, name: str) -> None:
        self.triggered.append((namespace, name))


def _pod(gate_status: str | None = None, rs: str = "web-abc") -> dict[str, Any]:
    conds = [{"type": gate.CONDITION, "status": gate_status}] if gate_status else []
    return {"metadata": {"name": f"{rs}-1", "labels": {"pod-template-hash": "abc"},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": rs, "controller": True}]},
            "spec": {"readinessGates": [{"conditionType": gate.CONDITION}]}, "status": {"conditions": conds}}


def _event(pod: dict[str, Any], type_: str = "MODIFIED") -> list[tuple[str, str]]:
    controller = FakeController()
    index = {("shop", "Deployment", "web"): ["app", "app-2"], ("shop", "StatefulSet", "db"): ["app"]}
    asyncio.run(gate_handlers.gated_pod_event(type=type_, body=pod, namespace="shop",
                                              memo={"controller": controller}, gated_workloads=index))
    return controller.triggered


def test_undecided_or_held_pods_trigger_every_schemamigration_gating_their_deployment():
    assert _event(_pod()) == [("shop", "app"), ("shop", "app-2")]
    assert _event(_pod("False")) == [("shop", "app"), ("shop", "app-2")]


def test_open_pods_need_nothing_until_deleted():
    assert _event(_pod("True")) == []
    assert _event(_pod("True"), "DELETED") == [("shop", "app"), ("shop", "app-2")]


def test_pods_of_other_deployments_trigger_nothing():
    assert _event(_pod(rs="other-abc")) == []


def test_a_statefulsets_pods_trigger_the_schemamigration_gating_it():
    sts_pod = {"metadata": {"name": "db-0", "labels": {gate.REVISION_LABEL: "db-5f7c"},
                            "ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": True}]},
               "spec": {"readinessGates": [{"conditionType": gate.CONDITION}]}, "status": {"conditions": []}}
    assert _event(sts_pod) == [("shop", "app")]
    other = {**sts_pod, "metadata": {**sts_pod["metadata"], "ownerReferences": [
        {"kind": "StatefulSet", "name": "cache", "controller": True}]}}
    assert _event(other) == []


def test_a_deleted_schemamigration_with_a_gate_releases_its_pods(monkeypatch):
    released: list[dict[str, Any]] = []
    monkeypatch.setattr(gate_handlers, "_release_deleted", released.append)
    gated = {"metadata": {"name": "app", "namespace": "shop"}, "spec": {"rolloutGate": {"statefulSets": ["db"]}}}
    plain = {"metadata": {"name": "other", "namespace": "shop"}, "spec": {}}
    for type_, body in [("DELETED", gated), ("MODIFIED", gated), ("DELETED", plain)]:
        asyncio.run(gate_handlers.gating_migration_deleted(type=type_, body=body))
    assert released == [gated]


def test_only_gated_pods_pass_the_filter():
    assert gate_handlers._has_gate(spec={"readinessGates": [{"conditionType": gate.CONDITION}]})
    assert not gate_handlers._has_gate(spec={"containers": []})
