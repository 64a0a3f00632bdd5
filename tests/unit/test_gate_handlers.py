"""The rollout gate's kopf wiring: the Deployment → SchemaMigration index and the pod events it routes."""

from __future__ import annotations

import asyncio
from typing import Any

from schemagate.controller import gate, gate_handlers


def test_index_maps_each_named_deployment_to_its_schemamigration():
    spec = {"rolloutGate": {"deployments": ["web", "worker"]}}
    assert gate_handlers.gated_deployments(namespace="shop", name="app", spec=spec) == {
        ("shop", "web"): "app", ("shop", "worker"): "app"}
    assert gate_handlers.gated_deployments(namespace="shop", name="app", spec={}) == {}
    assert gate_handlers.gated_deployments(namespace="shop", name="app", spec={"rolloutGate": {"deployments": "web"}}) == {}


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
    index = {("shop", "web"): ["app", "app-2"]}
    asyncio.run(gate_handlers.gated_pod_event(type=type_, body=pod, namespace="shop",
                                              memo={"controller": controller}, gated_deployments=index))
    return controller.triggered


def test_undecided_or_held_pods_trigger_every_schemamigration_gating_their_deployment():
    assert _event(_pod()) == [("shop", "app"), ("shop", "app-2")]
    assert _event(_pod("False")) == [("shop", "app"), ("shop", "app-2")]


def test_open_pods_need_nothing_until_deleted():
    assert _event(_pod("True")) == []
    assert _event(_pod("True"), "DELETED") == [("shop", "app"), ("shop", "app-2")]


def test_pods_of_other_deployments_trigger_nothing():
    assert _event(_pod(rs="other-abc")) == []


def test_only_gated_pods_pass_the_filter():
    assert gate_handlers._has_gate(spec={"readinessGates": [{"conditionType": gate.CONDITION}]})
    assert not gate_handlers._has_gate(spec={"containers": []})
