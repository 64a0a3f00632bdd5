"""The rollout gate's I/O against a fake API: which pods it patches, how, and what status it reports."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from schemagate.api import conditions as c
from schemagate.controller import gate, gate_reconcile, observe
from schemagate.controller.plan import DbState

NS = "shop"


def _pod(name: str, rs: str = "web-abc", template_hash: str = "abc", gated: bool = True, required: str = "2",
         gate_status: str | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS, "labels": {"app": "web", "pod-template-hash": template_hash},
                            "annotations": {gate.REQUIRED_VERSION_ANNOTATION: required},
                            "ownerReferences": [{"kind": "ReplicaSet", "name": rs, "uid": f"uid-{rs}",
                                                 "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    conds = [{"type": "ContainersReady", "status": "True"}]
    if gate_status:
        conds.append({"type": gate.CONDITION, "status": gate_status, "reason": "x", "message": "y"})
    spec = {"readinessGates": [{"conditionType": gate.CONDITION}]} if gated else {}
    return {"metadata": meta, "spec": spec, "status": {"conditions": conds}}


def _deployment(gated: bool = True) -> dict[str, Any]:
    spec = {"readinessGates": [{"conditionType": gate.CONDITION}]} if gated else {}
    return {"metadata": {"name": "web", "namespace": NS, "uid": "u-1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"spec": spec}}}


class FakeCore:
    def __init__(self, pods: list[dict[str, Any]]):
        self.pods = pods
        self.patches: list[tuple[str, dict[str, Any], str | None]] = []
        self.selectors: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.api_client = None

    def list_namespaced_pod(self, namespace: str, label_selector: str, _preload_content: bool) -> Any:
        self.selectors.append(label_selector)
        return SimpleNamespace(data=json.dumps({"items": self.pods}).encode())

    def patch_namespaced_pod_status(self, name: str, namespace: str, body: dict[str, Any],
                                    _content_type: str | None = None) -> None:
        self.patches.append((name, body, _content_type))

    def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> None:
        self.events.append(body)


def _replicasets(pods: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each pod's ReplicaSet, its template annotated as that ReplicaSet's first pod; web-* belong to the
    Deployment web (uid u-1), others to another Deployment."""
    out: dict[str, dict[str, Any]] = {}
    for pod in pods:
        ref = pod["metadata"]["ownerReferences"][0]
        owner = {"kind": "Deployment", "name": "web", "uid": "u-1", "controller": True} \
            if ref["name"].startswith("web-") else {"kind": "Deployment", "name": "other", "uid": "u-2",
                                                    "controller": True}
        out.setdefault(ref["name"], {
            "metadata": {"name": ref["name"], "uid": ref["uid"], "ownerReferences": [owner]},
            "spec": {"template": {"metadata": {"annotations": dict(pod["metadata"]["annotations"])}}}})
    return out


class FakeApps:
    def __init__(self, deployment: dict[str, Any] | None, replicasets: dict[str, dict[str, Any]] | None = None):
        self.deployment = deployment
        self.replicasets = replicasets or {}
        self.reads: list[str] = []

    def read_namespaced_replica_set(self, name: str, namespace: str, _preload_content: bool) -> Any:
        self.reads.append(name)
        if name not in self.replicasets:
            raise ApiException(status=404, reason="Not Found")
        return SimpleNamespace(data=json.dumps(self.replicasets[name]).encode())

    def read_namespaced_deployment(self, name: str, namespace: str, _preload_content: bool) -> Any:
        if self.deployment is None:
            raise ApiException(status=404, reason="Not Found")
        return SimpleNamespace(data=json.dumps(self.deployment).encode())


def _migration(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "app", "namespace": NS},
            "spec": {"database": {"secretRef": {"name": "db"}}, "source": {"configMaps": ["m"]},
                     "rolloutGate": {"deployments": ["web"]}},
            "status": status or {}}


def _status(target: int = 2, stalled: tuple[str, str] | None = None) -> dict[str, Any]:
    desired = c.stalled(*stalled) if stalled else c.reconciling(c.MIGRATING, "Job app-g1-x is migrating")
    return {"targetVersion": target, "conditions": c.apply(None, desired, 1)}


class FakeCustom:
    def __init__(self) -> None:
        self.migrations: list[dict[str, Any]] = [_migration()]

    def list_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str) -> Any:
        return {"items": self.migrations}


@pytest.fixture
def world(monkeypatch):
    def make(pods: list[dict[str, Any]], deployment: dict[str, Any] | None = None) -> SimpleNamespace:
        core = FakeCore(pods)
        apps = FakeApps(_deployment() if deployment is None else deployment, _replicasets(pods))
        monkeypatch.setattr(gate_reconcile.client, "AppsV1Api", lambda _api: apps)
        return SimpleNamespace(core=core, apps=apps, custom=FakeCustom())
    return make


def test_pods_are_patched_by_strategic_merge_so_the_kubelets_conditions_survive(world):
    k = world([_pod("web-abc-1", required="1"), _pod("web-def-2", rs="web-def", template_hash="def", required="2")])
    result = gate_reconcile.run(k, _migration(), _status(), DbState(1))
    assert k.core.selectors == ["app=web"]
    assert [(n, t) for n, _, t in k.core.patches] == [("web-abc-1", "application/strategic-merge-patch+json"),
                                                      ("web-def-2", "application/strategic-merge-patch+json")]
    (open_cond,), (held_cond,) = (b["status"]["conditions"] for _, b, _ in k.core.patches)
    assert (open_cond["status"], held_cond["status"], held_cond["reason"]) == ("True", "False", gate.WAITING_FOR_MIGRATION)
    assert result is not None and result.status == {"waiting": 1, "deployments": [
        {"name": "web", "pods": 2, "waiting": 1, "requiredVersion": 2, "reason": gate.WAITING_FOR_MIGRATION,
         "message": None}]}
    assert [(ref["kind"], ref["name"], e.reason) for ref, e in result.events] == [("Deployment", "web", gate.ROLLOUT_HELD)]


def test_only_the_deployments_gated_live_pods_are_touched_and_open_gates_stay_open(world):
    k = world([
        _pod("web-abc-1", gate_status="True"),                    # open: stays open although v2 is pending
        _pod("other-abc-1", rs="other-abc"),                      # another owner matching the selector
        _pod("web-abc-2", gated=False),                           # no readiness gate: not ours to decide
        _pod("web-abc-3", deleting=True),                         # on its way out
    ])
    result = gate_reconcile.run(k, _migration(), _status(), DbState(1))
    assert k.core.patches == []
    assert result is not None and result.status["deployments"][0]["pods"] == 1
    assert result.status["waiting"] == 0


def test_release_posts_an_event_on_the_deployment(world):
    k = world([_pod("web-abc-1", gate_status="False")])
    previous = {"rolloutGate": {"waiting": 1, "deployments": [{"name": "web", "pods": 1, "waiting": 1,
                                                               "reason": gate.WAITING_FOR_MIGRATION}]}}
    result = gate_reconcile.run(k, _migration(previous), _status(), DbState(2))
    assert result is not None and result.status["waiting"] == 0
    gate_reconcile.post_events(k, result)
    (event,) = k.core.events
    assert event["involvedObject"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                       "namespace": NS, "uid": "u-1"}
    assert event["reason"] == gate.ROLLOUT_RELEASED and event["type"] == "Normal"


def test_deployment_missing_or_without_the_gate_is_reported(world):
    k = world([], deployment=_deployment(gated=False))
    result = gate_reconcile.run(k, _migration(), _status(), DbState(1))
    assert result is not None and "no readinessGates entry" in result.status["deployments"][0]["message"]
    k = world([])
    k.apps.deployment = None
    result = gate_reconcile.run(k, _migration(), _status(), DbState(1))
    assert result is not None and result.status["deployments"][0]["message"] == f"Deployment {NS}/web not found"


def test_no_rollout_gate_clears_the_status_and_an_invalid_spec_keeps_it(world):
    k = world([_pod("web-abc-1")])
    plain = _migration()
    del plain["spec"]["rolloutGate"]
    assert gate_reconcile.run(k, plain, _status(), DbState(1)) == gate_reconcile.Result(None)
    broken = _migration()
    broken["spec"]["database"] = "nope"
    assert gate_reconcile.run(k, broken, _status(), DbState(1)) is None
    assert k.core.patches == []


def test_database_unreadable_holds_undecided_pods(world, monkeypatch):
    """The reconcile could not reach the database: the gate does not try again, and holds new pods."""
    def no_second_try(*_: Any) -> Any:
        raise AssertionError("the database was read again")

    monkeypatch.setattr(observe, "database", no_second_try)
    k = world([_pod("web-abc-1", required="1"), _pod("web-def-2", rs="web-def", gate_status="True")])
    status = _status(stalled=(c.CONNECTION_FAILED, "cannot reach database db:5432/app: timeout"))
    result = gate_reconcile.run(k, _migration(), status, None)
    ((name, body, _),) = k.core.patches
    cond = body["status"]["conditions"][0]
    assert name == "web-abc-1" and (cond["status"], cond["reason"]) == ("False", gate.DATABASE_UNAVAILABLE)
    assert "cannot reach database" in cond["message"]
    assert result is not None and result.status["waiting"] == 1


def test_reconcile_stopped_before_the_database_so_the_gate_reads_it(world, monkeypatch):
    """An invalid migration file stalls the plan; pods needing what the database has still open."""
    monkeypatch.setattr(observe, "database", lambda core, ns, spec, hosts=(): "db")
    monkeypatch.setattr(observe, "database_state", lambda db: DbState(1))
    k = world([_pod("web-abc-1", required="1")])
    gate_reconcile.run(k, _migration(), _status(stalled=(c.INVALID_MIGRATIONS, "00003_x.sql:1: bad")), None)
    ((_, body, _),) = k.core.patches
    assert body["status"]["conditions"][0]["status"] == "True"


def test_a_failing_api_call_keeps_the_last_known_entry_and_does_not_stop_the_reconcile(world):
    k = world([_pod("web-abc-1")])

    def broken(*_: Any, **__: Any) -> Any:
        raise ApiException(status=500, reason="Internal Server Error")

    k.core.list_namespaced_pod = broken
    known = {"name": "web", "pods": 2, "waiting": 1, "requiredVersion": 2, "reason": gate.WAITING_FOR_MIGRATION}
    result = gate_reconcile.run(k, _migration({"rolloutGate": {"waiting": 1, "deployments": [known]}}), _status(),
                                DbState(1))
    assert result is not None and result.status == {"waiting": 1, "deployments": [known]} and result.events == []


def test_two_schemamigrations_naming_one_deployment_decide_none_of_its_pods(world):
    k = world([_pod("web-abc-1", required="1"), _pod("web-def-2", rs="web-def", gate_status="True")])
    rival = _migration()
    rival["metadata"]["name"] = "billing"
    k.custom.migrations.append(rival)
    result = gate_reconcile.run(k, _migration(), _status(), DbState(1))
    assert k.core.patches == []  # not even the pod whose version the database has
    assert result is not None
    (entry,) = result.status["deployments"]
    assert entry["reason"] == gate.CONFLICT and entry["waiting"] == 1
    assert "SchemaMigration billing" in entry["message"] and f"{NS}/web" in entry["message"]
    assert [(e.type, e.reason) for _, e in result.events] == [("Warning", gate.ROLLOUT_GATE_MISCONFIGURED)]
    # Said once, not on every reconcile.
    again = gate_reconcile.run(k, _migration({"rolloutGate": result.status}), _status(), DbState(1))
    assert again is not None and again.events == []


def test_schemamigrations_unlistable_decides_nothing(world):
    k = world([_pod("web-abc-1", required="1")])

    def forbidden(*_: Any) -> Any:
        raise ApiException(status=403, reason="Forbidden")

    k.custom.list_namespaced_custom_object = forbidden
    assert gate_reconcile.run(k, _migration(), _status(), DbState(1)) is None
    assert k.core.patches == []


def test_a_pod_whose_annotation_was_lowered_live_is_held_and_the_replicaset_read_once(world):
    k = world([_pod("web-abc-1", required="2"), _pod("web-abc-2", required="0"), _pod("web-abc-3", required="2")])
    result = gate_reconcile.run(k, _migration(), _status(), DbState(1))
    reasons = {name: body["status"]["conditions"][0]["reason"] for name, body, _ in k.core.patches}
    assert reasons == {"web-abc-1": gate.WAITING_FOR_MIGRATION, "web-abc-2": gate.ANNOTATION_MISMATCH,
                       "web-abc-3": gate.WAITING_FOR_MIGRATION}
    assert k.apps.reads == ["web-abc"]
    assert result is not None and result.status["deployments"][0]["reason"] == gate.ANNOTATION_MISMATCH


def test_a_pod_of_a_replicaset_of_another_deployment_with_a_matching_name_is_not_decided(world):
    """ReplicaSet web-abc re-created by someone else: the name says web, the UIDs do not."""
    k = world([_pod("web-abc-1", required="1")])
    k.apps.replicasets["web-abc"]["metadata"]["ownerReferences"][0]["uid"] = "u-other"
    result = gate_reconcile.run(k, _migration(), _status(), DbState(1))
    assert k.core.patches == []
    assert result is not None and result.status["deployments"][0]["pods"] == 0
