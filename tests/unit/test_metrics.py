"""/metrics after what users see happen: a success, a failure, a held rollout, a wait for the Lease, a plan
awaiting approval — driven through the real reconcile (tests/unit/reconcile_world.py)."""

from __future__ import annotations

import urllib.request
from datetime import datetime

import pytest
from prometheus_client import generate_latest

from schemagate.api import v1alpha1 as api
from schemagate.controller import metrics
from schemagate.controller import decide as p

from tests.unit import reconcile_world as rw

NS, NAME = rw.NS, rw.NAME


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch):
    metrics.STATE.forget(NS, NAME)
    metrics.STATE.clear()
    clock = Clock()
    monkeypatch.setattr(metrics.STATE, "_clock", clock)
    yield clock
    metrics.STATE.forget(NS, NAME)
    metrics.STATE.clear()


def value(metric: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(metric, labels)


def migration(metric: str) -> float | None:
    return value(metric, namespace=NS, name=NAME)


def histogram(metric: str, **labels: str) -> tuple[float, float]:
    return value(f"{metric}_count", **labels) or 0.0, value(f"{metric}_sum", **labels) or 0.0


def test_a_successful_migration(monkeypatch, clock):
    world = rw.World(monkeypatch)
    durations, waits = histogram("schemagate_migration_job_duration_seconds", outcome="Succeeded"), \
        histogram("schemagate_lease_wait_seconds")
    world.reconcile()
    assert migration("schemagate_migration_jobs_started_total") == 1
    assert (migration("schemagate_migration_current_version"), migration("schemagate_migration_pending"),
            migration("schemagate_migration_ready"), migration("schemagate_migration_stalled")) == (0, 2, 0, 0)
    assert migration("schemagate_migration_last_success_timestamp_seconds") is None
    world.reconcile()  # the Job still runs: nothing is counted twice
    assert migration("schemagate_migration_jobs_started_total") == 1
    world.finish("Succeeded", rw.OK, seconds=42)
    world.reconcile()
    world.reconcile()
    assert migration("schemagate_migration_jobs_succeeded_total") == 1
    assert (migration("schemagate_migration_current_version"), migration("schemagate_migration_target_version"),
            migration("schemagate_migration_pending"), migration("schemagate_migration_ready")) == (2, 2, 0, 1)
    assert migration("schemagate_migration_not_ready_since_timestamp_seconds") is None
    finished = world.status["lastJob"]["finishedAt"]
    assert migration("schemagate_migration_last_success_timestamp_seconds") == \
        datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp()
    count, total = histogram("schemagate_migration_job_duration_seconds", outcome="Succeeded")
    assert (count - durations[0], total - durations[1]) == (1, 42)
    count, total = histogram("schemagate_lease_wait_seconds")
    assert (count - waits[0], total - waits[1]) == (1, 0)  # the Lease was free


def test_a_failed_migration_is_counted_by_reason_and_never_labelled_with_its_error(monkeypatch, clock):
    world = rw.World(monkeypatch)
    world.reconcile()
    world.finish("Failed", rw.FAILED)
    world.reconcile()
    world.reconcile()
    assert value("schemagate_migration_jobs_failed_total", namespace=NS, name=NAME, reason="MigrationFailed") == 1
    assert migration("schemagate_migration_jobs_succeeded_total") in (None, 0)
    assert (migration("schemagate_migration_stalled"), migration("schemagate_migration_ready"),
            migration("schemagate_migration_current_version")) == (1, 0, 1)
    text = generate_latest(metrics.REGISTRY).decode()
    assert "permission denied" not in text and "app-g1-" not in text  # no error texts, no Job names


def test_an_unknown_failure_reason_is_counted_as_other():
    assert metrics.bounded_reason("MigrationFailed") == "MigrationFailed"
    assert metrics.bounded_reason("pg said: relation users does not exist") == metrics.OTHER_REASON
    assert metrics.bounded_reason(None) == metrics.OTHER_REASON


def test_a_held_rollout_shows_the_pods_and_how_long_the_oldest_waited(monkeypatch, clock):
    world = rw.World(monkeypatch, spec={"rolloutGate": {"deployments": ["web"]}},
                     pods=[rw.gated_pod("web-abc-1"), rw.gated_pod("web-abc-2")])
    world.reconcile()
    labels = {"namespace": NS, "deployment": "web"}
    assert value("schemagate_rollout_gate_held_pods", **labels) == 2
    assert value("schemagate_rollout_gate_oldest_held_seconds", **labels) == 0
    clock.t += 90
    world.reconcile()  # still held: the wait goes on from the first hold
    clock.t += 30
    assert value("schemagate_rollout_gate_oldest_held_seconds", **labels) == 120  # as of the scrape
    world.finish("Succeeded", rw.OK)
    world.reconcile()
    assert value("schemagate_rollout_gate_held_pods", **labels) is None
    assert value("schemagate_rollout_gate_oldest_held_seconds", **labels) is None


def test_the_wait_for_a_busy_lease_is_measured(monkeypatch, clock):
    world = rw.World(monkeypatch)
    world.lease = p.LeaseState("shop/other-g3-abc", False)
    before = histogram("schemagate_lease_wait_seconds")
    world.reconcile()
    assert world.status["phase"] == "Waiting" and not world.jobs
    clock.t += 75
    world.reconcile()
    world.lease = p.LeaseState()
    clock.t += 5
    world.reconcile()
    assert world.jobs
    count, total = histogram("schemagate_lease_wait_seconds")
    assert (count - before[0], total - before[1]) == (1, 80)


def test_a_plan_awaiting_approval(monkeypatch, clock):
    world = rw.World(monkeypatch, spec={"approval": "Manual"})
    world.reconcile()
    assert world.status["phase"] == "AwaitingApproval" and not world.jobs
    assert migration("schemagate_migration_awaiting_approval") == 1
    ready = next(x for x in world.status["conditions"] if x["type"] == "Ready")
    assert migration("schemagate_migration_not_ready_since_timestamp_seconds") == \
        datetime.fromisoformat(ready["lastTransitionTime"].replace("Z", "+00:00")).timestamp()
    world.annotate(api.APPROVE_ANNOTATION, world.status["plan"]["hash"])
    world.reconcile()
    assert migration("schemagate_migration_awaiting_approval") == 0 and world.jobs


def test_a_deleted_schemamigration_leaves_no_series(monkeypatch, clock):
    world = rw.World(monkeypatch, spec={"rolloutGate": {"deployments": ["web"]}}, pods=[rw.gated_pod()])
    world.reconcile()
    metrics.STATE.forget(NS, NAME)
    text = generate_latest(metrics.REGISTRY).decode()
    assert f'name="{NAME}"' not in text and 'deployment="web"' not in text


def test_metrics_are_served_over_http():
    server, thread = metrics.serve(0, "127.0.0.1")
    try:
        port = server.server_address[1]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    assert "# TYPE schemagate_leader gauge" in body and "# TYPE schemagate_reconcile_duration_seconds histogram" in body


def test_every_metric_is_listed_in_docs_operations_md(monkeypatch, clock):
    world = rw.World(monkeypatch, spec={"rolloutGate": {"deployments": ["web"]}}, pods=[rw.gated_pod()])
    world.reconcile()
    docs = (rw.Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    names = set()
    for family in metrics.REGISTRY.collect():
        if family.name.startswith("schemagate_"):
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    assert names and not [n for n in sorted(names) if f"`{n}`" not in docs]
