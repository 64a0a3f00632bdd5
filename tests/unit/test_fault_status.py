"""What status says after a fault: a killed runner, a pod gone with its termination message, a database the
operator cannot read while a Job runs, a Lease whose holder is dead."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from schemagate.controller import observe
from schemagate.controller import decide as p
from schemagate.controller.config import Options
from schemagate.controller.reconcile import reconcile
from schemagate.kube import Clients
from schemagate.controller.status import finished_record

NOW = "2026-01-01T00:00:00Z"


def _job(name: str = "app-g1-abc", failed: tuple[str, str] | None = ("BackoffLimitExceeded", "Job has reached the "
                                                                   "specified backoff limit")) -> client.V1Job:
    conditions = [client.V1JobCondition(type="Failed", status="True", reason=failed[0], message=failed[1])] \
        if failed else []
    return client.V1Job(metadata=client.V1ObjectMeta(name=name, owner_references=[client.V1OwnerReference(
        api_version="schemagate.io/v1alpha1", kind="SchemaMigration", name="app", uid="u-1")]),
        status=client.V1JobStatus(conditions=conditions))


def _pod(message: str, exit_code: int = 137, reason: str = "Error") -> client.V1Pod:
    term = client.V1ContainerStateTerminated(exit_code=exit_code, message=message, reason=reason)
    return client.V1Pod(metadata=client.V1ObjectMeta(name="app-g1-abc-xyz"), status=client.V1PodStatus(
        container_statuses=[client.V1ContainerStatus(name="migrate", state=client.V1ContainerState(terminated=term),
                                                     image="i", image_id="", ready=False, restart_count=0)]))


def _progress(running: dict[str, Any] | None, applied: int = 9, holder: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"schemagate": 1, "command": "up", "ok": True, "versionBefore": 0, "versionAfter": applied,
                           "applied": [{"version": v, "file": f"{v:05d}_t.sql", "direction": "up", "durationMs": 1}
                                       for v in range(1, applied + 1)],
                           "pending": [], "error": None, "progress": True}
    if running:
        doc["running"] = running
    if holder:
        doc["holder"] = holder
    return doc


class Lister:
    def __init__(self, items: list):
        self.items = items

    def list_namespaced_job(self, namespace: str, label_selector: str = "", field_selector: str = "") -> Any:
        return SimpleNamespace(items=self.items)

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> Any:
        return SimpleNamespace(items=self.items)


def _record(pods: list, lease_run: dict[str, Any] | None = None, job: client.V1Job | None = None) -> dict[str, Any]:
    (found,) = observe.jobs(Lister([job or _job()]), Lister(pods), "team", "app", "u-1", lease_run=lease_run)
    return finished_record(None, found, NOW)


def test_a_killed_runner_says_its_signal_and_the_file_that_was_running():
    running = {"version": 10, "file": "00010_t.sql", "direction": "up", "noTransaction": False}
    record = _record([_pod(json.dumps(_progress(running)))])
    assert record["reason"] == "RunnerKilled"
    for words in ("exit code 137 (SIGKILL)", "while running 00010_t.sql", "after 9 step(s)", "not applied"):
        assert words in record["message"], record["message"]
    assert record["versionAfter"] == 9


def test_a_runner_killed_inside_a_no_transaction_file_is_stalled_with_a_reason_of_its_own():
    running = {"version": 4, "file": "00004_idx.sql", "direction": "up", "noTransaction": True}
    record = _record([_pod(json.dumps(_progress(running, 3)))])
    assert record["reason"] == "NoTransactionInterrupted"
    for words in ("NO TRANSACTION file 00004_idx.sql", "cannot be known", "Check the objects",
                  "resolve-interrupted 4"):
        assert words in record["message"], record["message"]


def test_a_killed_runner_without_any_output_still_names_its_exit_code():
    record = _record([_pod("", 137)])
    assert "exit code 137 (SIGKILL)" in record["message"], record["message"]


def test_a_pod_gone_at_the_deadline_is_reported_from_what_the_runner_left_on_the_lease():
    final = {"schemagate": 1, "command": "up", "ok": False, "versionBefore": 0, "versionAfter": 2, "applied": [],
             "pending": [3], "holder": "team/app-g1-abc",
             "error": {"reason": "Interrupted", "message": "interrupted by a signal while running 00003_t.sql (up)",
                       "file": "00003_t.sql", "version": 3, "line": None, "statement": None, "sqlstate": None}}
    record = _record([], final, _job(failed=("DeadlineExceeded", "Job was active longer than specified deadline")))
    assert record["reason"] == "Interrupted" and record["versionAfter"] == 2
    assert "DeadlineExceeded" in record["message"] and "while running 00003_t.sql" in record["message"]


def test_the_lease_of_another_job_is_not_taken_for_ours():
    other = _progress({"version": 3, "file": "00003_t.sql", "direction": "up"}, holder="team/other-g1-xyz")
    record = _record([], other)
    assert "00003_t.sql" not in record["message"] and record["reason"] == "JobFailed"


def test_a_lease_whose_holder_job_has_finished_is_known_to_be_free():
    class Coordination:
        def read_namespaced_lease(self, name: str, namespace: str, _preload_content: bool) -> Any:
            from datetime import datetime, timezone
            renew = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            return SimpleNamespace(data=json.dumps({"metadata": {}, "spec": {
                "holderIdentity": "team/old-g1-abc", "leaseDurationSeconds": 3600, "renewTime": renew}}))

    read = observe.lease_state(Coordination(), "team", "l", Lister([_job("old-g1-abc")]))  # type: ignore[arg-type]
    assert read.state.holder == "team/old-g1-abc" and not read.state.expired and read.state.holder_gone
    alive = observe.lease_state(Coordination(), "team", "l", Lister([_job("old-g1-abc", None)]))  # type: ignore[arg-type]
    assert not alive.state.holder_gone


class World:
    def __init__(self, old_status: dict[str, Any]):
        self.body = {"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration",
                     "metadata": {"name": "app", "namespace": "team", "uid": "u-1", "generation": 1},
                     "spec": {"database": {"secretRef": {"name": "db"}}, "source": {"configMaps": ["m"]}},
                     "status": old_status}
        self.status: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []

    def clients(self) -> Clients:
        w = self

        class Custom:
            def get_namespaced_custom_object(self, *_: Any) -> dict[str, Any]:
                return w.body

            def patch_namespaced_custom_object_status(self, *args: Any) -> None:
                w.status = args[-1]["status"]

        class Core:
            def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> None:
                w.events.append(body)

        return SimpleNamespace(custom=Custom(), core=Core(), batch=None, coordination=None)  # type: ignore


def test_a_failed_database_read_while_our_job_runs_keeps_reconciling_without_a_warning(monkeypatch):
    world = World({"phase": "Migrating", "currentJob": {"job": "app-g1-abc", "outcome": "Running"}})
    running = observe.JobInfo(p.JobState("app-g1-abc", "Running"), NOW, None, NOW)
    monkeypatch.setattr(observe, "database", lambda *a, **k: observe.DatabaseAddress("postgres://x", "db", 5432, "app",
                                                                               "goose_db_version"))
    monkeypatch.setattr(observe, "lease_state", lambda *a, **k: observe.LeaseRead(p.LeaseState("team/app-g1-abc")))
    monkeypatch.setattr(observe, "jobs", lambda *a, **k: [running])
    monkeypatch.setattr(observe, "migration_files", lambda *a, **k: (p.MigrationFile(1, "00001_a.sql", "s"),))

    def down(_db: Any) -> p.ObservedDatabase:
        raise observe.Blocked("ConnectionFailed", "cannot reach database db:5432/app: the database system is "
                                                  "shutting down")

    monkeypatch.setattr(observe, "database_state", down)
    reconcile(world.clients(), "team", "app", Options(job_image="schemagate:dev"))
    assert world.status is not None
    conditions = {c["type"]: c for c in world.status["conditions"]}
    assert conditions["Stalled"]["status"] == "False" and conditions["Reconciling"]["status"] == "True"
    assert conditions["Reconciling"]["reason"] == "DatabaseUnreadable" and world.status["phase"] == "Migrating"
    assert "app-g1-abc" in conditions["Reconciling"]["message"]
    assert not [e for e in world.events if e["type"] == "Warning"]
