"""The rollout gate end to end: a config-server Deployment (2 replicas, maxUnavailable 0, the readiness gate)
whose new pods become Ready only when the database has the schema they need; the same for a StatefulSet
(updateStrategy RollingUpdate); and a workload taken out of the gate, or its SchemaMigration deleted, while
a pod is held.

The real node, the operator's pod, PostgreSQL and kubectl. A watch records every
status change of the Deployment and of its pods while a rollout runs, so "availableReplicas never drops
below 2" and "no new pod was Ready before its schema" are checked on every change, not on samples.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from kube_fixtures import wait_until
from run_report import measured
from migration_files import ORDERS_BROKEN as V2_BROKEN
from migration_files import ORDERS_OF_USERS_AFTER_1S as V2
from migration_files import USERS as V1

pytestmark = pytest.mark.e2e

GATE = "schemagate.io/schema-ready"
REQUIRED = "schemagate.io/required-schema-version"


# Stands in for config-server's image (devenv.images.app_images, imported into the node); on another
# cluster, SCHEMAGATE_E2E_APP_IMAGE names one that runs there.
APP_IMAGE = os.environ.get("SCHEMAGATE_E2E_APP_IMAGE", "localhost/config-server:1.0.0")


def deployment(name: str = "config-server", build: str = "v1", required: int | None = 1,
               replicas: int = 2) -> dict[str, Any]:
    """What the config-server chart renders: the readiness gate and the version the build needs."""
    annotations = {REQUIRED: str(required)} if required is not None else {}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {"metadata": {"labels": {"app": name}, "annotations": annotations}, "spec": {
            "readinessGates": [{"conditionType": GATE}],
            "containers": [{"name": "server", "image": APP_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": "BUILD", "value": build}]}]}}}}


def statefulset(name: str = "config-store", build: str = "v1", required: int | None = 1,
                replicas: int = 3) -> dict[str, Any]:
    """The same app as a StatefulSet: RollingUpdate replaces one pod at a time, highest ordinal first, and
    waits for it to be Ready before the next."""
    annotations = {REQUIRED: str(required)} if required is not None else {}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name}, "spec": {
        "replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
        "updateStrategy": {"type": "RollingUpdate"}, "podManagementPolicy": "OrderedReady",
        "template": {"metadata": {"labels": {"app": name}, "annotations": annotations}, "spec": {
            "readinessGates": [{"conditionType": GATE}], "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "server", "image": APP_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": "BUILD", "value": build}]}]}}}}


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == ctype), {})


@dataclass
class PodRecord:
    name: str
    required: str | None
    gate_seen: list[tuple[str, str]] = field(default_factory=list)  # (status, reason) in the order seen
    ready_at: float | None = None
    db_version_when_ready: int | None = None


class Recorder:
    """Watches the Deployment (or StatefulSet: `workloads`), its pods and the migration Jobs from a thread
    while a rollout runs."""

    def __init__(self, kube: Any, namespace: str, db_version: Any, name: str = "config-server",
                 workloads: str = "deployments"):
        from kubernetes import config

        self.api = config.new_client_from_config(config_file=str(kube.kubeconfig))
        self.namespace, self.name, self.db_version, self.workloads = namespace, name, db_version, workloads
        self.available: list[int] = []
        self.pods: dict[str, PodRecord] = {}  # by UID: a StatefulSet's new pod has its old pod's name
        self.jobs_complete: dict[str, float] = {}  # Jobs seen running, then Complete
        self.versions: list[tuple[float, int]] = []  # (when first seen, database version), polled
        self.errors: list[str] = []
        self._running_jobs: set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(what,), daemon=True)
                         for what in (workloads, "pods", "jobs")]
        self._threads.append(threading.Thread(target=self._poll_database, daemon=True))

    def __enter__(self) -> Recorder:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self.api.close()

    def _loop(self, what: str) -> None:
        from kubernetes import client, watch

        core, apps, batch = client.CoreV1Api(self.api), client.AppsV1Api(self.api), client.BatchV1Api(self.api)
        lister = {"deployments": apps.list_namespaced_deployment, "statefulsets": apps.list_namespaced_stateful_set,
                  "pods": core.list_namespaced_pod, "jobs": batch.list_namespaced_job}[what]
        kw = {"field_selector": f"metadata.name={self.name}"} if what == self.workloads else (
            {"label_selector": f"app={self.name}"} if what == "pods" else {})
        version = None
        while not self._stop.is_set():
            try:
                w = watch.Watch()
                for ev in w.stream(lister, self.namespace, resource_version=version, timeout_seconds=1,
                                   _preload_content=False, **kw):
                    obj = ev["raw_object"]
                    version = obj["metadata"].get("resourceVersion")
                    getattr(self, "_on_workload" if what == self.workloads else f"_on_{what}")(ev["type"], obj)
                    if self._stop.is_set():
                        w.stop()
            except Exception as e:  # noqa: BLE001  (reported by check(); a watch may expire and restart)
                if "410" in str(e):
                    version = None
                    continue
                self.errors.append(f"{what}: {e}")
                time.sleep(0.2)

    def _poll_database(self) -> None:
        while not self._stop.is_set():
            try:
                version = self.db_version()
                if not self.versions or self.versions[-1][1] != version:
                    self.versions.append((time.monotonic(), version))
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"database: {e}")
            self._stop.wait(0.05)

    def version_seen_at(self, version: int) -> float | None:
        return next((t for t, v in self.versions if v >= version), None)

    def job_complete_after(self, version: int) -> float | None:
        """When the Job that brought the database to `version` was Complete (the first Complete after)."""
        seen = self.version_seen_at(version)
        return None if seen is None else min((t for t in self.jobs_complete.values() if t >= seen), default=None)

    def _on_workload(self, type_: str, obj: dict[str, Any]) -> None:
        self.available.append(int((obj.get("status") or {}).get("availableReplicas") or 0))

    def _on_pods(self, type_: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        rec = self.pods.setdefault(meta["uid"], PodRecord(meta["name"], (meta.get("annotations") or {}).get(REQUIRED)))
        gate = condition(obj, GATE)
        if gate and (not rec.gate_seen or rec.gate_seen[-1] != (gate["status"], gate.get("reason"))):
            rec.gate_seen.append((gate["status"], gate.get("reason")))
        if condition(obj, "Ready").get("status") == "True" and rec.ready_at is None:
            rec.ready_at = time.monotonic()
            rec.db_version_when_ready = self.db_version()

    def _on_jobs(self, type_: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if condition(obj, "Complete").get("status") != "True":
            self._running_jobs.add(name)
        elif name in self._running_jobs and name not in self.jobs_complete:
            self.jobs_complete[name] = time.monotonic()

    def new_pods(self, required: str) -> dict[str, PodRecord]:
        return {r.name: r for r in self.pods.values() if r.required == required}


def current_version(app: Any) -> int:
    versions = app.db_versions()
    return max(versions) if versions else 0


def rolled_out_at_v1(app: Any, replicas: int = 2) -> None:
    """config-server (`replicas` pods) rolled out at schema v1, its SchemaMigration gating it."""
    app.secret(app.database_url)
    app.migrations(V1)
    app.schemamigration(rolloutGate={"deployments": ["config-server"]})
    app.wait_ready(1)
    app.apply(deployment(replicas=replicas))
    app.kubectl("rollout", "status", "deployment/config-server", "--timeout=60s")


def serving_v1(app: Any) -> None:
    """config-server at schema v1 and Ready, its SchemaMigration gating it."""
    rolled_out_at_v1(app)
    gated = wait_until("status.rolloutGate: 2 pods, none waiting",
                       lambda: (g := app.status().get("rolloutGate")) and g["deployments"][0].get("pods") == 2 and g)
    assert gated["waiting"] == 0 and gated["deployments"][0]["name"] == "config-server"


def pods(app: Any) -> list[dict[str, Any]]:
    return app.kube.read(f"/api/v1/namespaces/{app.namespace}/pods", labelSelector="app=config-server")["items"]


def deployment_events(app: Any, kind: str = "Deployment", name: str = "config-server", *,
                      having: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """The operator's Events on the workload: (type, reason, message). The operator posts them after it has
    patched the pods and written status, so the rollout may be seen done first: with `having`, waited for
    until each of those reasons is there, as someone re-running `kubectl get events` would."""
    def read() -> list[tuple[str, str, str]]:
        items = json.loads(app.kubectl("get", "events", "--field-selector",
                                       f"involvedObject.kind={kind},involvedObject.name={name}",
                                       "-o", "json").stdout)["items"]
        return [(e["type"], e["reason"], e["message"]) for e in items if e.get("source", {}).get("component") ==
                "schemagate"]

    def complete() -> list[tuple[str, str, str]] | None:
        found = read()
        return found if set(having) <= {r for _, r, _ in found} else None

    if not having:
        return read()
    return wait_until(f"Events {', '.join(having)} on {kind} {name}", complete, timeout=30)


def report(what: str, figures: dict[str, float | None]) -> None:
    shown = ", ".join(f"{k} {v:.2f} s" if v is not None else f"{k} n/a" for k, v in figures.items())
    measured(f"[gate latency] {what}: {shown}")


def report_latency(rec: Recorder) -> None:
    """Figures for the issue's note, not assertions: when v2 became visible in the database (polled every
    50 ms), when the Job was Complete, when the first and the last new pod were Ready."""
    new = [p.ready_at for p in rec.new_pods("2").values() if p.ready_at]
    committed, complete = rec.version_seen_at(2), rec.job_complete_after(2)
    if not new or committed is None:
        return
    report("v2 in the database → new pods Ready", {"first": min(new) - committed, "last": max(new) - committed})
    if complete is not None:
        report("Job Complete → new pods Ready", {"first": min(new) - complete, "last": max(new) - complete})


def test_rollout_waits_for_the_migration_and_completes_by_itself(app, kube):
    serving_v1(app)
    with Recorder(kube, app.namespace, lambda: current_version(app)) as rec:
        # One apply: the new build needing v2, and migration v2.
        app.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-migrations"},
                   "data": {**V1, **V2}}, deployment(build="v2", required=2))
        done = app.kubectl("rollout", "status", "deployment/config-server", "--timeout=90s", check=False)
        app.wait_ready(2)
        # The gate follows the database, which is at v2 before the Job controller marks the Job Complete.
        wait_until("the Job Complete", lambda: rec.job_complete_after(2), timeout=30)
    assert done.returncode == 0, done.stderr
    assert not rec.errors, rec.errors
    assert rec.available and min(rec.available) >= 2, rec.available
    new = rec.new_pods("2")
    assert len(new) == 2, rec.pods
    for name, pod in new.items():
        assert pod.ready_at is not None, (name, pod)
        assert pod.db_version_when_ready is not None and pod.db_version_when_ready >= 2, (name, pod)
    # The first new pod was held (the Job had not finished) and then released.
    first = min(new.values(), key=lambda r: r.ready_at or 0)
    assert first.gate_seen[0] == ("False", "WaitingForMigration") and first.gate_seen[-1] == ("True", "SchemaReady")
    wait_until("the old pods gone", lambda: len(pods(app)) == 2, timeout=60)
    assert all(condition(p, GATE)["status"] == "True" for p in pods(app))
    gated = wait_until("no pod waiting", lambda: (g := app.status()["rolloutGate"])["waiting"] == 0 and g)
    assert gated["deployments"][0]["pods"] == 2
    deployment_events(app, having=("RolloutHeld", "RolloutReleased"))
    report_latency(rec)


def test_failing_migration_holds_the_rollout_and_fixing_it_completes_it(app, kube):
    serving_v1(app)
    with Recorder(kube, app.namespace, lambda: current_version(app)) as rec:
        app.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-migrations"},
                   "data": {**V1, **V2_BROKEN}}, deployment(build="v2", required=2))
        stalled = app.wait_condition("Stalled", "True", "MigrationFailed")
        assert "no_such_table" in stalled["message"] and "42P01" in stalled["message"]
        gated = wait_until("the held pod in status.rolloutGate", lambda: (
            (g := app.status().get("rolloutGate")) and g["waiting"] == 1
            and g["deployments"][0].get("reason") == "MigrationStalled" and g))
        assert gated["deployments"][0]["requiredVersion"] == 2
        held = [p for p in pods(app) if (p["metadata"].get("annotations") or {}).get(REQUIRED) == "2"]
        assert len(held) == 1
        gate = condition(held[0], GATE)
        assert (gate["status"], gate["reason"]) == ("False", "MigrationStalled") and "no_such_table" in gate["message"]
        assert condition(held[0], "Ready")["status"] == "False"
        old = [p for p in pods(app) if (p["metadata"].get("annotations") or {}).get(REQUIRED) == "1"]
        assert len(old) == 2 and all(condition(p, "Ready")["status"] == "True" for p in old)
        assert app.kubectl("rollout", "status", "deployment/config-server", "--timeout=2s",
                           check=False).returncode != 0
        assert ("Warning", "RolloutHeld") in [(t, r) for t, r, _ in deployment_events(app, having=("RolloutHeld",))]

        app.migrations({**V1, **V2})
        done = app.kubectl("rollout", "status", "deployment/config-server", "--timeout=90s", check=False)
        wait_until("the fixed Job Complete", lambda: rec.job_complete_after(2), timeout=30)
    assert done.returncode == 0, done.stderr
    assert not rec.errors, rec.errors
    assert min(rec.available) >= 2, rec.available
    assert all(p.db_version_when_ready and p.db_version_when_ready >= 2 for p in rec.new_pods("2").values()
               if p.ready_at), rec.pods
    app.wait_ready(2)
    deployment_events(app, having=("RolloutReleased",))
    report_latency(rec)


def test_operator_down_keeps_new_pods_unready_and_the_rollout_resumes_when_it_is_back(own_app, kube):
    app, operator = own_app, own_app.operator
    serving_v1(app)
    with Recorder(kube, app.namespace, lambda: current_version(app)) as rec:
        operator.kill()
        try:
            app.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-migrations"},
                       "data": {**V1, **V2}}, deployment(build="v2", required=2))

            def new_running() -> list[dict[str, Any]]:
                return [p for p in pods(app) if (p["metadata"].get("annotations") or {}).get(REQUIRED) == "2"
                        and condition(p, "ContainersReady").get("status") == "True"]

            (pod,) = wait_until("the new pod's containers running", new_running)
            time.sleep(2)  # a chance for anything but the operator to open the gate
            pod = next(p for p in pods(app) if p["metadata"]["name"] == pod["metadata"]["name"])
            # Held: no condition, or False if a replica being killed still decided it (a force-deleted pod's
            # API object goes at once, its container a moment later); never True while the operator is down.
            assert condition(pod, GATE).get("status") in (None, "False"), condition(pod, GATE)
            assert condition(pod, "Ready")["status"] == "False"
            assert current_version(app) == 1
        finally:
            operator.start()
        done = app.kubectl("rollout", "status", "deployment/config-server", "--timeout=90s", check=False)
        time.sleep(0.5)
    assert done.returncode == 0, done.stderr
    assert not rec.errors, rec.errors
    assert min(rec.available) >= 2, rec.available
    assert all(p.db_version_when_ready and p.db_version_when_ready >= 2 for p in rec.new_pods("2").values()
               if p.ready_at), rec.pods
    app.wait_ready(2)


def test_scale_ups_are_not_blocked_and_open_gates_stay_open_while_a_migration_is_stalled(app):
    """`pinned` declares the version it needs; `unpinned` needs whatever the SchemaMigration targets."""
    app.secret(app.database_url)
    app.migrations(V1)
    app.schemamigration(rolloutGate={"deployments": ["pinned", "unpinned"]})
    app.wait_ready(1)
    app.apply(deployment("pinned"), deployment("unpinned", required=None))
    for d in ("pinned", "unpinned"):
        app.kubectl("rollout", "status", f"deployment/{d}", "--timeout=60s")
    before = {p["metadata"]["name"] for p in
              json.loads(app.kubectl("get", "pods", "-l", "app=unpinned", "-o", "json").stdout)["items"]}

    # v2 fails: the target moves to 2 but the database stays at 1.
    app.migrations({**V1, **V2_BROKEN})
    app.wait_condition("Stalled", "True", "MigrationFailed")
    app.kubectl("scale", "deployment/pinned", "deployment/unpinned", "--replicas=3")
    # A pinned pod needs v1, which the database has: Ready at once.
    app.kubectl("rollout", "status", "deployment/pinned", "--timeout=60s")

    def unpinned_held() -> dict[str, Any] | None:
        g = app.status().get("rolloutGate") or {}
        entry = next((d for d in g.get("deployments") or [] if d["name"] == "unpinned"), {})
        return entry if entry.get("pods") == 3 and entry.get("waiting") == 1 else None

    entry = unpinned_held() or wait_until("the unpinned scale-up held", unpinned_held)
    assert entry["reason"] == "MigrationStalled" and entry["requiredVersion"] == 2
    unpinned = json.loads(app.kubectl("get", "pods", "-l", "app=unpinned", "-o", "json").stdout)["items"]
    for p in unpinned:
        # The two pods serving since v1 keep their open gate although the target is now 2.
        expected = "True" if p["metadata"]["name"] in before else "False"
        assert condition(p, GATE)["status"] == expected, p["metadata"]["name"]
        assert condition(p, "Ready")["status"] == expected
    dep = json.loads(app.kubectl("get", "deployment", "unpinned", "-o", "json").stdout)
    assert dep["status"]["availableReplicas"] == 2

    # Fixed: the held pod opens too.
    app.migrations({**V1, **V2})
    app.kubectl("rollout", "status", "deployment/unpinned", "--timeout=90s")


# StatefulSets: RollingUpdate deletes the highest-ordinal pod and re-creates it from the new revision, then
# waits for it to be Ready before the next. The gate holds that pod, so the rollout stops there: the
# StatefulSet has one pod fewer serving while it waits (its own update mechanism, not the gate's), and the
# pods not yet replaced keep serving.

STS = "config-store"


def sts_pods(app: Any) -> dict[str, dict[str, Any]]:
    items = json.loads(app.kubectl("get", "pods", "-l", f"app={STS}", "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p for p in items}


def serving_v1_statefulset(app: Any, **gate: Any) -> None:
    app.secret(app.database_url)
    app.migrations(V1)
    app.schemamigration(rolloutGate=gate or {"statefulSets": [STS]})
    app.wait_ready(1)
    app.apply(statefulset())
    app.kubectl("rollout", "status", f"statefulset/{STS}", "--timeout=120s")


def held_statefulset_pod(app: Any, last: str = f"{STS}-2", replicas: int = 3) -> dict[str, Any]:
    """The new revision applied with a failing v2: the last ordinal is re-created, needs v2 and is held."""
    app.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-migrations"},
               "data": {**V1, **V2_BROKEN}}, statefulset(build="v2", required=2, replicas=replicas))
    app.wait_condition("Stalled", "True", "MigrationFailed")

    def held() -> dict[str, Any] | None:
        pod = sts_pods(app).get(last)
        ok = pod and (pod["metadata"].get("annotations") or {}).get(REQUIRED) == "2" and \
            condition(pod, GATE).get("reason") == "MigrationStalled"
        return pod if ok else None

    return wait_until(f"{last} re-created from the new revision and held", held)


def test_statefulset_rolling_update_waits_for_the_migration_and_completes_by_itself(app, kube):
    serving_v1_statefulset(app)
    with Recorder(kube, app.namespace, lambda: current_version(app), name=STS, workloads="statefulsets") as rec:
        pod = held_statefulset_pod(app)
        assert condition(pod, "Ready")["status"] == "False" and "no_such_table" in condition(pod, GATE)["message"]
        time.sleep(3)  # the StatefulSet controller would have moved on to config-store-1 by now
        serving = sts_pods(app)
        for name in (f"{STS}-0", f"{STS}-1"):  # untouched: still the old revision, still Ready
            assert (serving[name]["metadata"].get("annotations") or {}).get(REQUIRED) == "1", name
            assert condition(serving[name], "Ready")["status"] == "True", name
            assert condition(serving[name], GATE)["status"] == "True", name
        gated = app.status()["rolloutGate"]
        (entry,) = gated["statefulSets"]
        assert (entry["name"], entry["pods"], entry["waiting"], entry["requiredVersion"], entry["reason"]) == (
            STS, 3, 1, 2, "MigrationStalled")
        assert app.kubectl("rollout", "status", f"statefulset/{STS}", "--timeout=2s", check=False).returncode != 0
        assert ("Warning", "RolloutHeld") in [(t, r) for t, r, _ in deployment_events(app, "StatefulSet", STS,
                                                                                       having=("RolloutHeld",))]

        app.migrations({**V1, **V2})  # fixed: the rollout resumes by itself
        done = app.kubectl("rollout", "status", f"statefulset/{STS}", "--timeout=180s", check=False)
    assert done.returncode == 0, done.stderr
    assert not rec.errors, rec.errors
    # RollingUpdate takes one pod away at a time, never more.
    assert rec.available and min(rec.available) >= 2, rec.available
    new = rec.new_pods("2")
    assert set(new) == {f"{STS}-0", f"{STS}-1", f"{STS}-2"}, rec.pods
    for name, record in new.items():
        assert record.ready_at is not None and record.db_version_when_ready is not None, (name, record)
        assert record.db_version_when_ready >= 2, (name, record)
    app.wait_ready(2)
    deployment_events(app, "StatefulSet", STS, having=("RolloutReleased",))


def _released(app: Any, pod_name: str, pods_of: Any) -> dict[str, Any]:
    def opened() -> dict[str, Any] | None:
        pod = pods_of(app).get(pod_name)
        return pod if pod and condition(pod, GATE).get("status") == "True" else None

    pod = wait_until(f"{pod_name}'s gate opened", opened)
    gate = condition(pod, GATE)
    assert gate["reason"] == "GateRemoved" and "without checking the schema" in gate["message"], gate
    return pod


def test_a_deployment_taken_out_of_the_gate_has_its_held_pod_released_with_a_warning(app):
    """One replica, so the released pod is the whole rollout: with more, the next new pod would be decided
    by nobody (the Event says to remove the readiness gate from the template)."""
    rolled_out_at_v1(app, replicas=1)
    app.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-migrations"},
               "data": {**V1, **V2_BROKEN}}, deployment(build="v2", required=2, replicas=1))
    app.wait_condition("Stalled", "True", "MigrationFailed")
    wait_until("a pod held", lambda: (g := app.status().get("rolloutGate")) and g["waiting"] == 1)
    (held,) = [p for p in pods(app) if (p["metadata"].get("annotations") or {}).get(REQUIRED) == "2"]

    app.schemamigration()  # the same SchemaMigration without spec.rolloutGate (apply drops the field)
    _released(app, held["metadata"]["name"], lambda a: {p["metadata"]["name"]: p for p in pods(a)})
    # Released, not merely un-held: the rollout completes although v2 is still failing.
    app.kubectl("rollout", "status", "deployment/config-server", "--timeout=90s")
    warnings = [(t, m) for t, r, m in deployment_events(app, having=("RolloutGateRemoved",))
                if r == "RolloutGateRemoved"]
    assert warnings and warnings[0][0] == "Warning" and "SchemaMigration app" in warnings[0][1], warnings
    assert "remove it from the template" in warnings[0][1]
    assert wait_until("status.rolloutGate cleared", lambda: "rolloutGate" not in app.status() or None)
    # The migration itself is not touched by the gate: the spec's new generation tries v2 once more, and
    # it fails as before.
    app.wait_condition("Stalled", "True", "MigrationFailed")


def test_a_deleted_schemamigration_releases_the_held_pod_of_its_statefulset(app):
    """One replica, for the reason given above."""
    app.secret(app.database_url)
    app.migrations(V1)
    app.schemamigration(rolloutGate={"statefulSets": [STS]})
    app.wait_ready(1)
    app.apply(statefulset(replicas=1))
    app.kubectl("rollout", "status", f"statefulset/{STS}", "--timeout=120s")
    held = held_statefulset_pod(app, last=f"{STS}-0", replicas=1)
    app.kubectl("delete", "schemamigration", "app", "--wait=true")
    _released(app, held["metadata"]["name"], sts_pods)
    app.kubectl("rollout", "status", f"statefulset/{STS}", "--timeout=180s")
    warnings = [(t, m) for t, r, m in deployment_events(app, "StatefulSet", STS, having=("RolloutGateRemoved",))
                if r == "RolloutGateRemoved"]
    assert warnings and warnings[0][0] == "Warning" and "was deleted" in warnings[0][1], warnings
