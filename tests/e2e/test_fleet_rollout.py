"""SchemaMigrationSet end to end on the real node: 20 tenant databases on one PostgreSQL server, a canary
of 2, one database that cannot take the new migration, a gated config-server Deployment.

What users rely on: the canary goes first and the rest wait for it; no more than maxParallel migrate at
once; a failure stops the rollout at maxFailures with the rest left at the old version and the broken
database named in status; fixing it completes the set; a database labelled later is migrated; one whose
label is removed is let go, not deleted; the gated Deployment's new pod is Ready only once every database
has the schema. Needs the operator installed with rbac.listSecrets=true (the selector lists Secrets).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_fixtures import wait_until
# The sleep keeps each Job running long enough that the window (maxParallel) is visible in the timings.
from migration_files import ORDERS_AFTER_2S as V2
from migration_files import USERS as V1

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GATE = "schemagate.io/schema-ready"
REQUIRED = "schemagate.io/required-schema-version"
LABEL = {"schemagate.io/e2e-fleet": "tenants"}
TENANTS = [f"tenant-{k:02d}" for k in range(20)]
BROKEN = "tenant-07"  # not a canary: its database already has a table orders, so 00002 fails there
MAX_PARALLEL = 4


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Fleet:
    def __init__(self, app: Any, postgres_server: Any):
        self.app, self.pg = app, postgres_server
        self.urls: dict[str, str] = {}

    def tenant(self, name: str, labels: dict[str, str] | None = None) -> None:
        url = self.pg.create_database(f"{self.app.namespace}_{name}".replace("-", "_"))
        self.urls[name] = url
        self.app.apply({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": name, "labels": {**LABEL, **(labels or {})}},
                        "stringData": {"url": url}})

    def sql(self, name: str, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.urls[name], autocommit=True) as conn:
            conn.execute(statement)

    def versions(self, name: str) -> list[int]:
        return self.app.db_versions(self.urls[name])

    def get(self, name: str = "cs") -> dict[str, Any]:
        return json.loads(self.app.kubectl("get", "smigset", name, "-o", "json").stdout)

    def status(self, name: str = "cs") -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def children(self, name: str = "cs") -> dict[str, dict[str, Any]]:
        out = self.app.kubectl("get", "smig", "-l", f"schemagate.io/set={name}", "-o", "json").stdout
        return {c["metadata"]["annotations"]["schemagate.io/set-database"]: c for c in json.loads(out)["items"]}

    def condition(self, ctype: str, name: str = "cs") -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == ctype), {})

    def wait(self, what: str, probe: Any, timeout: float = 300) -> Any:
        try:
            return wait_until(what, probe, timeout=timeout, interval=1)
        except pytest.fail.Exception:
            print(f"--- set status:\n{json.dumps(self.status(), indent=1)}\n--- operator log:\n"
                  f"{self.app.operator.tail(80)}")
            raise

    def wait_ready(self, databases: int, version: int, name: str = "cs", timeout: float = 300) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            s = self.status(name)
            ready = next((c for c in s.get("conditions") or [] if c["type"] == "Ready"), {})
            ok = (s.get("phase"), s.get("databases"), s.get("ready"), s.get("targetVersion"), s.get("lowestVersion"),
                  ready.get("status"), s.get("observedGeneration")) == (
                "Ready", databases, databases, version, version, "True", self.get(name)["metadata"]["generation"])
            return s if ok else None

        return self.wait(f"set {name}: {databases} databases Ready at {version}", probe, timeout)


def _set(target: int) -> dict[str, Any]:
    return {"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigrationSet", "metadata": {"name": "cs"},
            "spec": {"databases": {"selector": {"matchLabels": LABEL}},
                     "source": {"configMaps": ["cs-migrations"]},
                     "template": {"targetVersion": target},
                     "strategy": {"canary": {"count": 2}, "maxParallel": MAX_PARALLEL, "maxFailures": 1},
                     "rolloutGate": {"deployments": ["config-server"]}}}


def _deployment(build: str, required: int) -> dict[str, Any]:
    """config-server as its chart renders it (see test_rollout_gate.py): the readiness gate, the version the
    build needs, maxUnavailable 0."""
    import os

    image = os.environ.get("SCHEMAGATE_E2E_APP_IMAGE", "localhost/config-server:1.0.0")
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "config-server"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "config-server"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {"metadata": {"labels": {"app": "config-server"}, "annotations": {REQUIRED: str(required)}},
                     "spec": {"readinessGates": [{"conditionType": GATE}],
                              "containers": [{"name": "server", "image": image, "imagePullPolicy": "IfNotPresent",
                                              "env": [{"name": "BUILD", "value": build}]}]}}}}


def _pods(app: Any) -> list[dict[str, Any]]:
    out = json.loads(app.kubectl("get", "pods", "-l", "app=config-server", "-o", "json").stdout)["items"]
    return [p for p in out if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def _set_crd(kube: Any) -> None:
    # The session's crd fixture applies crds/ (both CRDs) but waits only for SchemaMigration's.
    kube.kubectl("wait", "--for=condition=Established", "crd/schemamigrationsets.schemagate.io", "--timeout=60s")


def _runs(child: dict[str, Any]) -> list[dict[str, Any]]:
    s = child.get("status") or {}
    return [r for r in [s.get("currentJob"), *(s.get("history") or [])] if r]


def test_twenty_databases_canary_window_max_failures_fix_add_remove_and_the_gate(app, kube, postgres_server):
    _set_crd(kube)
    fleet = Fleet(app, postgres_server)
    app.migrations({**V1, **V2}, name="cs-migrations")
    for t in TENANTS:
        fleet.tenant(t)

    # Version 1 everywhere, and config-server build v1 (needs 1) serving.
    app.apply(_set(1))
    fleet.wait_ready(20, 1, timeout=600)
    assert sorted(fleet.children()) == TENANTS
    app.apply(_deployment("v1", 1))
    app.kubectl("rollout", "status", "deployment/config-server", "--timeout=180s", timeout=200)

    # Build v2 needs version 2; its pod must wait for every database.
    fleet.sql(BROKEN, "CREATE TABLE orders (id bigint PRIMARY KEY, legacy text)")
    app.apply(_deployment("v2", 2))
    app.apply(_set(2))

    halted = fleet.wait("the set Halted at maxFailures", lambda: (
        (s := fleet.status()).get("phase") == "Halted" and s), timeout=600)
    stalled = fleet.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "MaxFailuresReached")
    assert BROKEN in stalled["message"]
    assert halted["failed"] == 1 and halted["failing"][0]["database"] == BROKEN
    assert halted["failing"][0]["migration"] == f"cs-{BROKEN}" and halted["failing"][0]["reason"]
    assert halted["lowestVersion"] == 1 and halted["highestVersion"] == 2

    # In flight when it failed: those finish; nothing new starts; the rest stay at version 1.
    revision = halted["revision"]

    def updated_now() -> set[str]:
        return {t for t, c in fleet.children().items()
                if c["metadata"]["annotations"]["schemagate.io/set-revision"] == revision}

    updated = updated_now()
    time.sleep(8)  # several resyncs (1 s) and child events
    assert updated_now() == updated
    children = fleet.children()
    left = [t for t in TENANTS if t not in updated]
    assert left, "the halt left no database behind: the window is too wide for this test"
    for t in left:
        assert fleet.versions(t) == [1], t
    assert fleet.status()["phases"].get("Outdated") == len(left)

    # The canary went first: no other database's Job for version 2 was created before both canaries
    # were Ready at version 2 (timestamps have second resolution). Ready comes with the database's
    # version, read once the runner commits: their Jobs may finish a moment later.
    def v2_runs(t: str) -> list[dict[str, Any]]:
        return [r for r in _runs(children[t]) if r.get("targetVersion") == 2]

    def created(r: dict[str, Any]) -> float:
        return _ts(r.get("createdAt") or r["startedAt"])

    def ready_since(t: str) -> float:
        status = children[t]["status"]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], status["currentVersion"]) == ("True", 2), (t, status)
        return _ts(ready["lastTransitionTime"])

    canary_done = max(ready_since(t) for t in TENANTS[:2])
    for t in updated - set(TENANTS[:2]):
        assert v2_runs(t) and min(created(r) for r in v2_runs(t)) >= canary_done - 1, (
            f"{t} started before the canary was Ready: {v2_runs(t)}")
    # Never more than maxParallel at once: from a Job's creation to its database's Ready at version 2
    # (the set counts a database as in flight until then), or to the Job's end when it failed.
    def until(t: str, r: dict[str, Any]) -> float:
        status = children[t]["status"]
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
        end = _ts(r["finishedAt"])
        if ready.get("status") == "True" and status.get("currentVersion") == 2:
            end = min(end, _ts(ready["lastTransitionTime"]))
        return end

    spans = [(created(r), until(t, r)) for t in updated for r in v2_runs(t) if r.get("finishedAt")]
    for start, _ in spans:
        overlapping = sum(1 for a, b in spans if a <= start + 0.5 and b > start + 0.5)
        assert overlapping <= MAX_PARALLEL + 1, spans  # +1: one second of timestamp granularity

    # The new pod is held: not every database is at 2.
    new = [p for p in _pods(app) if p["metadata"]["annotations"].get(REQUIRED) == "2"]
    assert new and not any(_ready(p) for p in new)
    assert fleet.status()["rolloutGate"]["waiting"] >= 1

    # Fixed: the database cleaned up and its SchemaMigration retried; the set completes, the pod is Ready.
    fleet.sql(BROKEN, "DROP TABLE orders")
    app.kubectl("annotate", "smig", f"cs-{BROKEN}", "schemagate.io/retry=fixed", "--overwrite")
    done = fleet.wait_ready(20, 2, timeout=600)
    assert not done.get("failing") and done["failed"] == 0
    for t in TENANTS:
        assert fleet.versions(t) == [1, 2], t
    app.kubectl("rollout", "status", "deployment/config-server", "--timeout=180s", timeout=200)
    assert all(_ready(p) for p in _pods(app))

    # A tenant added to the selector is migrated.
    fleet.tenant("tenant-20")
    fleet.wait_ready(21, 2, timeout=300)
    assert fleet.versions("tenant-20") == [1, 2]

    # A tenant whose label is removed is let go: its SchemaMigration stays, without the set's ownership.
    app.kubectl("label", "secret", "tenant-03", "schemagate.io/e2e-fleet-")
    fleet.wait_ready(20, 2, timeout=120)
    left_alone = json.loads(app.kubectl("get", "smig", "cs-tenant-03", "-o", "json").stdout)
    assert not left_alone["metadata"].get("ownerReferences")
    assert "schemagate.io/set" not in (left_alone["metadata"].get("labels") or {})
    assert fleet.versions("tenant-03") == [1, 2]

    row = app.kubectl("get", "smigset", "cs", "--no-headers").stdout.split()
    assert row[:6] == ["cs", "20", "20", "0", "2", "Ready"]


def test_example_set_for_three_tenants_reaches_ready(app, kube, postgres_server):
    _set_crd(kube)
    app.kubectl("create", "configmap", "config-server-migrations", f"--from-file={REPO / 'migrations'}")
    newest = max(int(f.name.split("_")[0]) for f in (REPO / "migrations").glob("*.sql"))
    docs = list(yaml.safe_load_all((REPO / "examples" / "config-server-schemamigrationset.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["stringData"]["url"] = postgres_server.create_database(
                f"{app.namespace}_{doc['metadata']['name']}".replace("-", "_"))
        if doc["kind"] == "SchemaMigrationSet":
            doc["spec"].pop("rolloutGate")  # no config-server Deployment in this test
    app.apply(*docs)
    fleet = Fleet(app, postgres_server)
    fleet.wait_ready(3, newest, name="config-server", timeout=300)
    row = app.kubectl("get", "smigset", "config-server", "--no-headers").stdout.split()
    assert row[:6] == ["config-server", "3", "3", "0", str(newest), "Ready"]
    children = fleet.children("config-server")
    assert sorted(children) == ["tenant-acme-db", "tenant-globex-db", "tenant-initech-db"]
    first = min(children.values(), key=lambda c: c["metadata"]["creationTimestamp"])
    assert first["metadata"]["annotations"]["schemagate.io/set-database"] == "tenant-acme-db"  # the canary
