"""The SchemaMigrationSet's I/O against a fake API: what it lists, creates, patches and writes."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace
from typing import Any

from kubernetes.client.exceptions import ApiException

from schemagate.api import reasons
from schemagate.api import migrationset as set_api
from schemagate.controller import fleet_reconcile
from schemagate.controller.config import Options

NS = "app"


class FakeCore:
    def __init__(self, secrets: list[dict[str, Any]] | None, forbidden: bool = False):
        self.secrets, self.forbidden = secrets or [], forbidden
        self.calls: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.api_client = None

    def list_namespaced_secret(self, namespace: str, **kw: Any) -> Any:
        self.calls.append({"namespace": namespace, **kw})
        if self.forbidden:
            raise ApiException(status=403, reason="Forbidden")
        return SimpleNamespace(data=json.dumps({"items": [{"metadata": s} for s in self.secrets]}).encode())

    def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> None:
        self.events.append(body)


class FakeCustom:
    def __init__(self, sets: dict[str, dict[str, Any]]):
        self.objects: dict[tuple[str, str], dict[str, Any]] = {("schemamigrationsets", n): o for n, o in sets.items()}
        self.patches: list[tuple[str, str, dict[str, Any], str | None]] = []

    def get_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        return copy.deepcopy(self.objects[(plural, name)])

    def list_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str) -> Any:
        return {"items": [copy.deepcopy(o) for (p, _), o in self.objects.items() if p == plural]}

    def create_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, body: Any) -> None:
        body = copy.deepcopy(body)
        body["metadata"]["generation"] = 1
        self.objects[(plural, body["metadata"]["name"])] = body

    def patch_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str, body: Any,
                                       _content_type: str | None = None) -> None:
        self.patches.append((plural, name, body, _content_type))

    def patch_namespaced_custom_object_status(self, group: str, version: str, ns: str, plural: str, name: str,
                                              body: Any) -> None:
        self.objects[(plural, name)]["status"] = body["status"]


def _set(**strategy: Any) -> dict[str, Any]:
    return {"metadata": {"name": "cs", "namespace": NS, "uid": "set-uid", "generation": 1},
            "spec": {"databases": {"selector": {"matchLabels": {"app": "cs"}}},
                     "source": {"configMaps": ["cs-migrations"]}, "strategy": strategy}}


def _k(secrets: list[str], forbidden: bool = False, **strategy: Any) -> Any:
    core = FakeCore([{"name": s, "labels": {"app": "cs"}} for s in secrets], forbidden)
    return SimpleNamespace(core=core, custom=FakeCustom({"cs": _set(**strategy)}))


def _children(k: Any) -> list[str]:
    return sorted(n for (p, n) in k.custom.objects if p == "schemamigrations")


def _ready(k: Any, name: str, version: int = 2) -> None:
    obj = k.custom.objects[("schemamigrations", name)]
    obj["status"] = {"phase": "Ready", "observedGeneration": 1, "currentVersion": version, "targetVersion": version,
                     "conditions": [{"type": "Ready", "status": "True", "reason": "UpToDate"}]}


def test_canary_first_then_the_rest_as_the_canary_becomes_ready():
    k = _k(["t1", "t2", "t3"], canary={"count": 1})
    fleet_reconcile.reconcile(k, NS, "cs", Options())
    assert _children(k) == ["cs-t1"]
    status = k.custom.objects[("schemamigrationsets", "cs")]["status"]
    assert (status["phase"], status["databases"], status["canaries"]) == ("Canary", 3, ["t1"])
    # Only names and labels were asked for, by label selector.
    [call] = k.core.calls
    assert (call["namespace"], call["label_selector"]) == (NS, "app=cs")
    assert call["_headers"]["Accept"].startswith("application/json;as=PartialObjectMetadataList")

    _ready(k, "cs-t1")
    fleet_reconcile.reconcile(k, NS, "cs", Options())
    assert _children(k) == ["cs-t1", "cs-t2", "cs-t3"]
    for name in ("cs-t2", "cs-t3"):
        _ready(k, name)
    fleet_reconcile.reconcile(k, NS, "cs", Options())
    status = k.custom.objects[("schemamigrationsets", "cs")]["status"]
    assert (status["phase"], status["ready"], status["lowestVersion"]) == ("Ready", 3, 2)


def test_a_selector_the_operator_may_not_list_says_how_to_grant_it():
    k = _k(["t1"], forbidden=True)
    fleet_reconcile.reconcile(k, NS, "cs", Options())
    status = k.custom.objects[("schemamigrationsets", "cs")]["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", reasons.SECRETS_NOT_LISTABLE)
    assert "rbac.listSecrets=true" in stalled["message"]
    assert not _children(k)
    assert [e["reason"] for e in k.core.events] == [reasons.SECRETS_NOT_LISTABLE]


def test_a_database_leaving_the_selector_is_let_go_by_merge_patch():
    k = _k(["t1", "t2"])
    fleet_reconcile.reconcile(k, NS, "cs", Options())
    k.core.secrets = [{"name": "t1", "labels": {"app": "cs"}}]
    fleet_reconcile.reconcile(k, NS, "cs", Options())
    assert k.custom.patches == [("schemamigrations", "cs-t2", {"metadata": {
        "ownerReferences": None, "labels": {set_api.SET_LABEL: None}}}, "application/merge-patch+json")]
    assert k.custom.objects[("schemamigrationsets", "cs")]["status"]["databases"] == 1


def test_an_invalid_spec_is_stalled_with_the_field():
    k = _k(["t1"])
    k.custom.objects[("schemamigrationsets", "cs")]["spec"]["strategy"] = {"maxParallel": 0}
    fleet_reconcile.reconcile(k, NS, "cs", Options())
    stalled = next(c for c in k.custom.objects[("schemamigrationsets", "cs")]["status"]["conditions"]
                   if c["type"] == "Stalled")
    assert stalled["reason"] == "InvalidSpec" and "spec.strategy.maxParallel" in stalled["message"]


def _gated_world(monkeypatch: Any, versions: dict[str, int]) -> Any:
    """A set over Secrets t1.. gating Deployment web, whose one new pod needs version 2; its children exist
    and are Ready at `versions`."""
    from test_gate_reconcile import FakeApps, _deployment, _pod, _replicasets

    from schemagate.controller import fleet, gate_reconcile

    pods = [_pod("web-abc-1", required="2")]
    apps = FakeApps(_deployment(), _replicasets(pods))
    monkeypatch.setattr(gate_reconcile.client, "AppsV1Api", lambda _api: apps)
    k = _k(sorted(versions))
    k.custom.objects[("schemamigrationsets", "cs")]["metadata"]["namespace"] = "shop"
    k.custom.objects[("schemamigrationsets", "cs")]["spec"]["rolloutGate"] = {"deployments": ["web"]}
    core = k.core
    core.pods, core.patches, core.selectors = pods, [], []
    core.list_namespaced_pod = lambda ns, label_selector, _preload_content: SimpleNamespace(
        data=json.dumps({"items": pods}).encode())
    core.patch_namespaced_pod_status = lambda name, ns, body, _content_type=None: core.patches.append((name, body))
    fleet_reconcile.reconcile(k, "shop", "cs", Options())  # creates the children
    for db, version in versions.items():
        _ready(k, fleet.child_name("cs", db), version)
    return k


def test_the_gate_over_a_set_holds_new_pods_until_every_database_has_their_version(monkeypatch):
    k = _gated_world(monkeypatch, {"t1": 2, "t2": 1})
    assert k.core.patches[0][1]["status"]["conditions"][0]["reason"] == "DatabaseUnavailable"  # no versions yet
    fleet_reconcile.reconcile(k, "shop", "cs", Options())
    (pod, body) = k.core.patches[-1]
    [cond] = body["status"]["conditions"]
    assert (pod, cond["status"], cond["reason"]) == ("web-abc-1", "False", "WaitingForMigration")
    assert "database is at 1" in cond["message"] and "SchemaMigrationSet" in cond["message"]
    assert k.custom.objects[("schemamigrationsets", "cs")]["status"]["rolloutGate"]["waiting"] == 1


def test_the_gate_over_a_set_opens_once_the_lowest_database_is_there(monkeypatch):
    k = _gated_world(monkeypatch, {"t1": 2, "t2": 2})
    fleet_reconcile.reconcile(k, "shop", "cs", Options())
    (pod, body) = k.core.patches[-1]
    assert (pod, body["status"]["conditions"][0]["status"]) == ("web-abc-1", "True")
    assert k.custom.objects[("schemamigrationsets", "cs")]["status"]["rolloutGate"]["waiting"] == 0
