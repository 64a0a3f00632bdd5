"""A SchemaMigration's world in memory, for driving the real `reconcile()` end to end at unit level.

The apiserver (the object and its status as merge-patched, ConfigMap, Secret, Jobs, Events, gated pods)
is faked; the database and the Job listing are the two observe functions stubbed, the way
tests/unit/test_allow.py and test_gate_reconcile.py fake them. Everything between (plan, policy, status,
conditions, the rollout gate's decisions) is the real code: tests/unit/test_metrics.py reads the metrics
it leaves, tests/unit/test_gitops_health.py the status it writes.
"""

from __future__ import annotations

import base64
from pathlib import Path  # noqa: F401  (tests find the repo through it)
import copy
import json
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from kubernetes.client import V1ConfigMap, V1ObjectMeta, V1Secret
from kubernetes.client.exceptions import ApiException

from schemagate.api import conditions as c
from schemagate.controller import gate, gate_reconcile, observe
from schemagate.controller import decide as p
from schemagate.controller.observe import JobInfo
from schemagate.controller.config import Options
from schemagate.controller.reconcile import reconcile

from tests.unit.test_gate_reconcile import FakeApps, _pod, _replicasets

NS, NAME = "shop", "app"
SECRET_URL = "postgres://app:s3cr3t-pw@db.shop.svc:5432/app"
FILES = {
    "00001_users.sql": "-- +goose Up\nCREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY);\n"
                       "-- +goose Down\nDROP TABLE IF EXISTS users;\n",
    "00002_email.sql": "-- +goose Up\nALTER TABLE users ADD COLUMN IF NOT EXISTS email text;\n"
                       "-- +goose Down\nALTER TABLE users DROP COLUMN IF EXISTS email;\n",
}
OPTS = Options(job_image="schemagate:dev", job_service_account="schemagate-migration")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the apiserver applies the status patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class World:
    def __init__(self, monkeypatch: Any, spec: dict[str, Any] | None = None, pods: list[dict[str, Any]] = ()):
        self.object: dict[str, Any] = {
            "apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration",
            "metadata": {"name": NAME, "namespace": NS, "uid": "uid-app", "generation": 1, "annotations": {}},
            "spec": {"database": {"secretRef": {"name": "db"}}, "source": {"configMaps": ["migrations"]},
                     **(spec or {})}}
        self.version = 0
        self.lease = p.LeaseState()
        self.jobs: dict[str, JobInfo] = {}
        self.events: list[dict[str, Any]] = []
        self.pods = list(pods)
        self.pod_patches: list[tuple[str, dict[str, Any]]] = []
        self.patches = 0
        monkeypatch.setattr(observe, "database_state", lambda db: p.ObservedDatabase(self.version,
                                                                            frozenset(range(1, self.version + 1))))
        monkeypatch.setattr(observe, "lease_state", lambda *_: observe.LeaseRead(self.lease))
        monkeypatch.setattr(observe, "jobs", lambda *_a, **_k: list(self.jobs.values()))
        deployment = {"metadata": {"name": "web", "namespace": NS, "uid": "u-1"},
                      "spec": {"selector": {"matchLabels": {"app": "web"}},
                               "template": {"spec": {"readinessGates": [{"conditionType": gate.CONDITION}]}}}}
        monkeypatch.setattr(gate_reconcile.client, "AppsV1Api", lambda _api: FakeApps(deployment, _replicasets(self.pods)))

    @property
    def status(self) -> dict[str, Any]:
        return self.object.get("status") or {}

    def reconcile(self) -> dict[str, Any]:
        reconcile(self.clients(), NS, NAME, OPTS)
        return self.status

    def finish(self, phase: str, result: dict[str, Any] | None = None, message: str | None = None,
               seconds: int = 42) -> None:
        """The running Job ends (the database moves as its result says)."""
        (name, running), = [(n, i) for n, i in self.jobs.items() if i.state.phase == "Running"]
        # From the startedAt status recorded (its second may differ from the Job's): durations stay exact.
        began = (self.status.get("currentJob") or {}).get("startedAt") or running.started
        started = datetime.fromisoformat(str(began).replace("Z", "+00:00"))
        finished = c.now_rfc3339(started + timedelta(seconds=seconds))
        self.jobs[name] = JobInfo(p.JobState(name, phase, result, message), running.started, finished,
                                  running.created)
        if result and isinstance(result.get("versionAfter"), int):
            self.version = result["versionAfter"]

    def annotate(self, key: str, value: str) -> None:
        self.object["metadata"]["annotations"][key] = value

    def clients(self) -> Any:
        w = self

        class Custom:
            def get_namespaced_custom_object(self, *_: Any) -> dict[str, Any]:
                return copy.deepcopy(w.object)

            def patch_namespaced_custom_object_status(self, *args: Any) -> None:
                w.patches += 1
                w.object["status"] = merge_patch(w.object.get("status"), args[-1]["status"])

            def list_namespaced_custom_object(self, *_: Any) -> dict[str, Any]:
                return {"items": [copy.deepcopy(w.object)]}

        class Core:
            api_client = None

            def read_namespaced_config_map(self, name: str, namespace: str) -> V1ConfigMap:
                if name != "migrations":
                    raise ApiException(status=404)
                return V1ConfigMap(metadata=V1ObjectMeta(name=name), data=dict(FILES))

            def read_namespaced_secret(self, name: str, namespace: str) -> V1Secret:
                if name != "db":
                    raise ApiException(status=404)
                return V1Secret(metadata=V1ObjectMeta(name=name),
                                data={"url": base64.b64encode(SECRET_URL.encode()).decode()})

            def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> None:
                w.events.append(body)

            def list_namespaced_pod(self, namespace: str, label_selector: str, _preload_content: bool) -> Any:
                return SimpleNamespace(data=json.dumps({"items": w.pods}).encode())

            def patch_namespaced_pod_status(self, name: str, namespace: str, body: dict[str, Any],
                                            _content_type: str | None = None) -> None:
                w.pod_patches.append((name, body))
                for pod in w.pods:
                    if pod["metadata"]["name"] == name:
                        conds = [x for x in pod["status"]["conditions"] if x["type"] != gate.CONDITION]
                        pod["status"]["conditions"] = conds + body["status"]["conditions"]

        class Batch:
            def create_namespaced_job(self, namespace: str, body: dict[str, Any]) -> None:
                name = body["metadata"]["name"]
                if name in w.jobs:
                    raise ApiException(status=409)
                now = c.now_rfc3339()  # as reconcile stamps currentJob.startedAt: the duration adds up
                w.jobs[name] = JobInfo(p.JobState(name, "Running"), now, None, now)

        return SimpleNamespace(custom=Custom(), core=Core(), batch=Batch(), coordination=None)


def gated_pod(name: str = "web-abc-1", required: str = "2") -> dict[str, Any]:
    return _pod(name, required=required)


OK = {"ok": True, "versionBefore": 0, "versionAfter": 2, "applied": [{"version": 1}, {"version": 2}]}
FAILED = {"ok": False, "versionBefore": 0, "versionAfter": 1, "applied": [{"version": 1}],
          "error": {"reason": "MigrationFailed", "message": "00002_email.sql: statement 1 (line 2): "
                                                            "permission denied for table users",
                    "file": "00002_email.sql"}}
