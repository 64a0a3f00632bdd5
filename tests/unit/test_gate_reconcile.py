"""The rollout gate's I/O against a fake API: which pods it patches, how, and what status it reports."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from schemagate.api import conditions as c
from schemagate.api import reasons
from schemagate.controller import gate, gate_reconcile, observe
from schemagate.controller.decide import ObservedDatabase

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
    desired = c.stalled(*stalled) if stalled else c.reconciling(reasons.MIGRATING, "Job app-g1-x is migrating")
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
    result = gate_reconcile.run(k, _migration(), _status(), ObservedDatabase(1))
    assert k.core.selectors == ["app=web"]
    assert [(n, t) for n, _, t in k.core.patches] == [("web-abc-1", "application/strategic-merge-patch+json"),
                                                      ("web-def-2", "application/strategic-merge-patch+json")]
    (open_cond,), (held_cond,) = (b["status"]["conditions"] for _, b, _ in k.core.patches)
    assert (open_cond["status"], held_cond["status"], held_cond["reason"]) == ("True", "False", reasons.WAITING_FOR_MIGRATION)
    assert result is not None and result.status == {"waiting": 1, "deployments": [
        {"name": "web", "pods": 2, "waiting": 1, "requiredVersion": 2, "reason": reasons.WAITING_FOR_MIGRATION,
         "message": None}]}
    assert [(ref["kind"], ref["name"], e.reason) for ref, e in result.events] == [("Deployment", "web", reasons.ROLLOUT_HELD)]


def test_only_the_deployments_gated_live_pods_are_touched_and_open_gates_stay_open(world):
    k = world([
        _pod("web-abc-1", gate_status="True"),                    # open: stays open although v2 is pending
        _pod("other-abc-1", rs="other-abc"),                      # another owner matching the selector
        _pod("web-abc-2", gated=False),                           # no readiness gate: not ours to decide
        _pod("web-abc-3", deleting=True),                         # on its way out
    ])
    result = gate_reconcile.run(k, _migration(), _status(), ObservedDatabase(1))
    assert k.core.patches == []
    assert result is not None and result.status["deployments"][0]["pods"] == 1
    assert result.status["waiting"] == 0


def test_release_posts_an_event_on_the_deployment(world):
    k = world([_pod("web-abc-1", gate_status="False")])
    previous = {"rolloutGate": {"waiting": 1, "deployments": [{"name": "web", "pods": 1, "waiting": 1,
                                                               "reason": reasons.WAITING_FOR_MIGRATION}]}}
    result = gate_reconcile.run(k, _migration(previous), _status(), ObservedDatabase(2))
    assert result is not None and result.status["waiting"] == 0
    gate_reconcile.post_events(k, result)
    (event,) = k.core.events
    assert event["involvedObject"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                       "namespace": NS, "uid": "u-1"}
    assert event["reason"] == reasons.ROLLOUT_RELEASED and event["type"] == "Normal"


def test_deployment_missing_or_without_the_gate_is_reported(world):
    k = world([], deployment=_deployment(gated=False))
    result = gate_reconcile.run(k, _migration(), _status(), ObservedDatabase(1))
    assert result is not None and "no readinessGates entry" in result.status["deployments"][0]["message"]
    k = world([])
    k.apps.deployment = None
    result = gate_reconcile.run(k, _migration(), _status(), ObservedDatabase(1))
    assert result is not None and result.status["deployments"][0]["message"] == f"Deployment {NS}/web not found"


def test_no_rollout_gate_clears_the_status_and_an_invalid_spec_keeps_it(world):
    k = world([_pod("web-abc-1")])
    plain = _migration()
    del plain["spec"]["rolloutGate"]
    assert gate_reconcile.run(k, plain, _status(), ObservedDatabase(1)) == gate_reconcile.Result(None)
    broken = _migration()
    broken["spec"]["database"] = "nope"
    assert gate_reconcile.run(k, broken, _status(), ObservedDatabase(1)) is None
    assert k.core.patches == []


def test_database_unreadable_holds_undecided_pods(world, monkeypatch):
    """The reconcile could not reach the database: the gate does not try again, and holds new pods."""
    def no_second_try(*_: Any) -> Any:
        raise AssertionError("the database was read again")

    monkeypatch.setattr(observe, "database", no_second_try)
    k = world([_pod("web-abc-1", required="1"), _pod("web-def-2", rs="web-def", gate_status="True")])
    status = _status(stalled=(reasons.CONNECTION_FAILED, "cannot reach database db:5432/app: timeout"))
    result = gate_reconcile.run(k, _migration(), status, None)
    ((name, body, _),) = k.core.patches
    cond = body["status"]["conditions"][0]
    assert name == "web-abc-1" and (cond["status"], cond["reason"]) == ("False", reasons.DATABASE_UNAVAILABLE)
    assert "cannot reach database" in cond["message"]
    assert result is not None and result.status["waiting"] == 1


def test_reconcile_stopped_before_the_database_so_the_gate_reads_it(world, monkeypatch):
    """An invalid migration file stalls the plan; pods needing what the database has still open."""
    monkeypatch.setattr(observe, "database", lambda core, ns, spec, hosts=(): "db")
    monkeypatch.setattr(observe, "database_state", lambda db: ObservedDatabase(1))
    k = world([_pod("web-abc-1", required="1")])
    gate_reconcile.run(k, _migration(), _status(stalled=(reasons.INVALID_MIGRATIONS, "00003_x.sql:1: bad")), None)
    ((_, body, _),) = k.core.patches
    assert body["status"]["conditions"][0]["status"] == "True"


def test_a_failing_api_call_keeps_the_last_known_entry_and_does_not_stop_the_reconcile(world):
    k = world([_pod("web-abc-1")])

    def broken(*_: Any, **__: Any) -> Any:
        raise ApiException(status=500, reason="Internal Server Error")

    k.core.list_namespaced_pod = broken
    known = {"name": "web", "pods": 2, "waiting": 1, "requiredVersion": 2, "reason": reasons.WAITING_FOR_MIGRATION}
    result = gate_reconcile.run(k, _migration({"rolloutGate": {"waiting": 1, "deployments": [known]}}), _status(),
                                ObservedDatabase(1))
    assert result is not None and result.status == {"waiting": 1, "deployments": [known]} and result.events == []


def test_two_schemamigrations_naming_one_deployment_decide_none_of_its_pods(world):
    k = world([_pod("web-abc-1", required="1"), _pod("web-def-2", rs="web-def", gate_status="True")])
    rival = _migration()
    rival["metadata"]["name"] = "billing"
    k.custom.migrations.append(rival)
    result = gate_reconcile.run(k, _migration(), _status(), ObservedDatabase(1))
    assert k.core.patches == []  # not even the pod whose version the database has
    assert result is not None
    (entry,) = result.status["deployments"]
    assert entry["reason"] == reasons.GATE_CONFLICT and entry["waiting"] == 1
    assert "SchemaMigration billing" in entry["message"] and f"{NS}/web" in entry["message"]
    assert [(e.type, e.reason) for _, e in result.events] == [("Warning", reasons.ROLLOUT_GATE_MISCONFIGURED)]
    # Said once, not on every reconcile.
    again = gate_reconcile.run(k, _migration({"rolloutGate": result.status}), _status(), ObservedDatabase(1))
    assert again is not None and again.events == []


def test_schemamigrations_unlistable_decides_nothing(world):
    k = world([_pod("web-abc-1", required="1")])

    def forbidden(*_: Any) -> Any:
        raise ApiException(status=403, reason="Forbidden")

    k.custom.list_namespaced_custom_object = forbidden
    assert gate_reconcile.run(k, _migration(), _status(), ObservedDatabase(1)) is None
    assert k.core.patches == []


def test_a_pod_whose_annotation_was_lowered_live_is_held_and_the_replicaset_read_once(world):
    k = world([_pod("web-abc-1", required="2"), _pod("web-abc-2", required="0"), _pod("web-abc-3", required="2")])
    result = gate_reconcile.run(k, _migration(), _status(), ObservedDatabase(1))
    patched = {name: body["status"]["conditions"][0]["reason"] for name, body, _ in k.core.patches}
    assert patched == {"web-abc-1": reasons.WAITING_FOR_MIGRATION, "web-abc-2": reasons.ANNOTATION_MISMATCH,
                       "web-abc-3": reasons.WAITING_FOR_MIGRATION}
    assert k.apps.reads == ["web-abc"]
    assert result is not None and result.status["deployments"][0]["reason"] == reasons.ANNOTATION_MISMATCH


def test_a_pod_of_a_replicaset_of_another_deployment_with_a_matching_name_is_not_decided(world):
    """ReplicaSet web-abc re-created by someone else: the name says web, the UIDs do not."""
    k = world([_pod("web-abc-1", required="1")])
    k.apps.replicasets["web-abc"]["metadata"]["ownerReferences"][0]["uid"] = "u-other"
    result = gate_reconcile.run(k, _migration(), _status(), ObservedDatabase(1))
    assert k.core.patches == []
    assert result is not None and result.status["deployments"][0]["pods"] == 0


# StatefulSets: the pod's controller is the StatefulSet; its template is the ControllerRevision its
# controller-revision-hash label names.

def _sts_pod(name: str, revision: str = "db-r2", required: str = "2", gate_status: str | None = None,
             sts_uid: str = "s-1") -> dict[str, Any]:
    conds = [{"type": gate.CONDITION, "status": gate_status, "reason": "x", "message": "y"}] if gate_status else []
    return {"metadata": {"name": name, "namespace": NS, "labels": {"app": "db", gate.REVISION_LABEL: revision},
                         "annotations": {gate.REQUIRED_VERSION_ANNOTATION: required},
                         "ownerReferences": [{"kind": "StatefulSet", "name": "db", "uid": sts_uid, "controller": True}]},
            "spec": {"readinessGates": [{"conditionType": gate.CONDITION}]}, "status": {"conditions": conds}}


def _statefulset() -> dict[str, Any]:
    return {"metadata": {"name": "db", "namespace": NS, "uid": "s-1"},
            "spec": {"selector": {"matchLabels": {"app": "db"}}, "updateStrategy": {"type": "RollingUpdate"},
                     "template": {"spec": {"readinessGates": [{"conditionType": gate.CONDITION}]}}}}


def _revision(name: str, required: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "ownerReferences": [{"kind": "StatefulSet", "name": "db", "uid": "s-1",
                                                            "controller": True}]},
            "data": {"spec": {"template": {"$patch": "replace", "metadata": {
                "annotations": {gate.REQUIRED_VERSION_ANNOTATION: required}}}}}}


class FakeStatefulApps(FakeApps):
    def __init__(self, deployment: dict[str, Any] | None, replicasets: dict[str, dict[str, Any]] | None = None):
        super().__init__(deployment, replicasets)
        self.statefulset: dict[str, Any] | None = _statefulset()
        self.revisions = {"db-r1": _revision("db-r1", "1"), "db-r2": _revision("db-r2", "2")}

    def read_namespaced_stateful_set(self, name: str, namespace: str, _preload_content: bool) -> Any:
        if self.statefulset is None or name != "db":
            raise ApiException(status=404, reason="Not Found")
        return SimpleNamespace(data=json.dumps(self.statefulset).encode())

    def read_namespaced_controller_revision(self, name: str, namespace: str, _preload_content: bool) -> Any:
        self.reads.append(name)
        if name not in self.revisions:
            raise ApiException(status=404, reason="Not Found")
        return SimpleNamespace(data=json.dumps(self.revisions[name]).encode())


def _gating(deployments: list[str] | None = None, stateful_sets: list[str] | None = None,
            status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj = _migration(status)
    rollout_gate = {}
    if deployments:
        rollout_gate["deployments"] = deployments
    if stateful_sets:
        rollout_gate["statefulSets"] = stateful_sets
    if rollout_gate:
        obj["spec"]["rolloutGate"] = rollout_gate
    else:
        del obj["spec"]["rolloutGate"]
    return obj


@pytest.fixture
def sts_world(monkeypatch):
    def make(pods: list[dict[str, Any]]) -> SimpleNamespace:
        core = FakeCore(pods)
        apps = FakeStatefulApps(_deployment(), _replicasets([p for p in pods if p["metadata"]["ownerReferences"][0]
                                                             ["kind"] == "ReplicaSet"]))
        monkeypatch.setattr(gate_reconcile.client, "AppsV1Api", lambda _api: apps)
        custom = FakeCustom()
        return SimpleNamespace(core=core, apps=apps, custom=custom)
    return make


def test_a_statefulsets_pods_are_decided_by_the_revision_they_were_made_from(sts_world):
    """RollingUpdate: db-1 was made from the new revision (needs v2), db-0 still from the old one (v1)."""
    k = sts_world([_sts_pod("db-0", revision="db-r1", required="1", gate_status="True"),
                   _sts_pod("db-1", revision="db-r2", required="2"),
                   _sts_pod("db-2", revision="db-r2", required="0")])  # lowered on the live pod
    k.custom.migrations = [_gating(stateful_sets=["db"])]
    result = gate_reconcile.run(k, _gating(stateful_sets=["db"]), _status(), ObservedDatabase(1))
    patched = {name: body["status"]["conditions"][0]["reason"] for name, body, _ in k.core.patches}
    assert patched == {"db-1": reasons.WAITING_FOR_MIGRATION, "db-2": reasons.ANNOTATION_MISMATCH}  # db-0: open, latched
    assert k.core.selectors == ["app=db"] and k.apps.reads == ["db-r1", "db-r2"]  # each revision read once
    assert result is not None and result.status == {"waiting": 2, "deployments": [], "statefulSets": [
        {"name": "db", "pods": 3, "waiting": 2, "requiredVersion": 2, "reason": reasons.ANNOTATION_MISMATCH,
         "message": None}]}
    assert {(ref["kind"], ref["name"], ref["uid"]) for ref, _ in result.events} == {("StatefulSet", "db", "s-1")}
    # v2 committed: the held pod opens, the one edited live stays held
    k.core.patches.clear()
    gate_reconcile.run(k, _gating(stateful_sets=["db"], status={"rolloutGate": result.status}), _status(),
                       ObservedDatabase(2))
    # (the fake keeps no condition, so db-2 is written again: still held)
    assert {n: b["status"]["conditions"][0]["status"] for n, b, _ in k.core.patches} == {"db-1": "True",
                                                                                         "db-2": "False"}


def test_a_pod_of_a_recreated_statefulset_of_the_same_name_is_not_decided(sts_world):
    k = sts_world([_sts_pod("db-0", sts_uid="s-old")])
    k.custom.migrations = [_gating(stateful_sets=["db"])]
    result = gate_reconcile.run(k, _gating(stateful_sets=["db"]), _status(), ObservedDatabase(2))
    assert k.core.patches == [] and result is not None and result.status["statefulSets"][0]["pods"] == 0


def test_a_statefulset_not_found_is_reported_by_kind(sts_world):
    k = sts_world([])
    k.apps.statefulset = None
    result = gate_reconcile.run(k, _gating(stateful_sets=["db"]), _status(), ObservedDatabase(1))
    assert result is not None and result.status["statefulSets"][0]["message"] == f"StatefulSet {NS}/db not found"


def _held(kind: str, name: str) -> dict[str, Any]:
    field_name = gate.FIELDS[kind]
    return {"rolloutGate": {"waiting": 1, field_name: [{"name": name, "pods": 1, "waiting": 1, "requiredVersion": 2,
                                                        "reason": reasons.WAITING_FOR_MIGRATION}]}}


def test_a_workload_taken_out_of_the_gate_has_its_held_pods_released_with_a_warning(sts_world):
    k = sts_world([_sts_pod("db-0", revision="db-r1", required="1", gate_status="True"),
                   _sts_pod("db-1", gate_status="False"), _sts_pod("db-2")])
    previous = _held(gate.STATEFUL_SET, "db")
    result = gate_reconcile.run(k, _gating(deployments=["web"], status=previous), _status(), ObservedDatabase(1))
    opened = {n: (b["status"]["conditions"][0]["status"], b["status"]["conditions"][0]["reason"])
              for n, b, _ in k.core.patches}
    assert opened == {"db-1": ("True", reasons.GATE_REMOVED), "db-2": ("True", reasons.GATE_REMOVED)}
    assert result is not None and "statefulSets" not in result.status
    removed = [(ref["kind"], ref["name"], e.type, e.reason) for ref, e in result.events
               if e.reason == reasons.ROLLOUT_GATE_REMOVED]
    assert removed == [("StatefulSet", "db", "Warning", reasons.ROLLOUT_GATE_REMOVED)]
    assert "2 held pod(s)" in next(e.message for _, e in result.events if e.reason == reasons.ROLLOUT_GATE_REMOVED)


def test_the_whole_gate_removed_releases_and_then_clears_the_status(world):
    k = world([_pod("web-abc-1", gate_status="False")])
    result = gate_reconcile.run(k, _gating(status=_held(gate.DEPLOYMENT, "web")), _status(), ObservedDatabase(1))
    ((name, body, _),) = k.core.patches
    assert (name, body["status"]["conditions"][0]["reason"]) == ("web-abc-1", reasons.GATE_REMOVED)
    assert result is not None and result.status is None
    assert [e.reason for _, e in result.events] == [reasons.ROLLOUT_GATE_REMOVED]


def test_a_workload_still_gated_by_another_schemamigration_is_not_released(world):
    k = world([_pod("web-abc-1", gate_status="False")])
    rival = _migration()
    rival["metadata"]["name"] = "billing"
    k.custom.migrations.append(rival)
    result = gate_reconcile.run(k, _gating(status=_held(gate.DEPLOYMENT, "web")), _status(), ObservedDatabase(1))
    assert k.core.patches == [] and result is not None and result.events == []


def test_a_release_that_fails_keeps_the_entry_so_the_next_pass_retries(world):
    k = world([_pod("web-abc-1", gate_status="False")])

    def broken(*_: Any, **__: Any) -> Any:
        raise ApiException(status=500, reason="Internal Server Error")

    k.core.list_namespaced_pod = broken
    previous = _held(gate.DEPLOYMENT, "web")
    result = gate_reconcile.run(k, _gating(status=previous), _status(), ObservedDatabase(1))
    assert result is not None and result.status == previous["rolloutGate"]


def test_a_deleted_schemamigration_releases_the_held_pods_of_what_it_gated(sts_world):
    k = sts_world([_sts_pod("db-1", gate_status="False")])
    k.custom.migrations = []  # gone
    result = gate_reconcile.release_deleted(k, _gating(stateful_sets=["db"], status=_held(gate.STATEFUL_SET, "db")))
    ((name, body, _),) = k.core.patches
    cond = body["status"]["conditions"][0]
    assert (name, cond["status"], cond["reason"]) == ("db-1", "True", reasons.GATE_REMOVED)
    assert "the SchemaMigration was deleted" in cond["message"]
    gate_reconcile.post_events(k, result)
    (event,) = k.core.events
    assert event["involvedObject"]["kind"] == "StatefulSet" and event["reason"] == reasons.ROLLOUT_GATE_REMOVED
    assert event["type"] == "Warning"
