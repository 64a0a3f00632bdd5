"""Each step of the SchemaMigration reconcile on its own, with fakes: read, decide, act, compose, write
status, post Events. (The whole chain, end to end on a fake API: tests/unit/reconcile_world.py's users.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from schemagate.api import conditions as c
from schemagate.api import reasons
from schemagate.api import v1alpha1 as api
from schemagate.controller import decide as p
from schemagate.controller import events, objects, observe, reconcile, world
from schemagate.controller.act import Acted, act
from schemagate.controller.config import Options
from schemagate.controller.observe import JobInfo
from tests.unit.reconcile_world import NAME, NS, OPTS, World

IMAGE_SOURCE = {"source": {"image": {"image": "registry.example/app-migrations:1", "path": "/migrations"}}}


class Untouchable:
    """An API that fails the test when the step under test talks to it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the step read {name} after it should have stopped")


def _obj(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": NAME, "namespace": NS, "uid": "uid-app", "generation": 3, "annotations": {}},
            "spec": {"database": {"secretRef": {"name": "db"}}, **(spec or IMAGE_SOURCE)},
            "status": status or {}}


# --- read -----------------------------------------------------------------------------------------------

def test_read_stops_at_an_invalid_spec_before_reading_anything():
    k = SimpleNamespace(core=Untouchable(), batch=Untouchable(), coordination=Untouchable())
    w = world.read(k, _obj({**IMAGE_SOURCE, "targetVersion": "newest"}), OPTS)  # type: ignore[arg-type]
    assert isinstance(w.stop, observe.Blocked) and w.stop.reason == reasons.INVALID_SPEC
    assert w.jobs is None and w.database is None


def test_read_stops_in_a_namespace_it_does_not_act_in():
    k = SimpleNamespace(core=Untouchable(), batch=Untouchable(), coordination=Untouchable())
    w = world.read(k, _obj(), Options(act_namespaces=("billing",)))  # type: ignore[arg-type]
    assert isinstance(w.stop, observe.Blocked) and w.stop.reason == reasons.NAMESPACE_NOT_ALLOWED


def test_read_still_reads_the_jobs_when_the_secret_is_missing(monkeypatch):
    fake = World(monkeypatch)
    k = fake.clients()
    job = JobInfo(p.JobState("app-g1-x", "Succeeded", {"ok": True, "versionAfter": 1}), "t0", "t1", "t0")
    fake.jobs[job.state.name] = job
    w = world.read(k, _obj({"database": {"secretRef": {"name": "other"}}, "source": {"configMaps": ["migrations"]}}),
                   OPTS)
    assert isinstance(w.stop, observe.Blocked) and w.stop.reason == reasons.SECRET_NOT_FOUND
    assert w.jobs == [job] and w.database is None


def test_read_gathers_one_world(monkeypatch):
    fake = World(monkeypatch)
    fake.version = 1
    w = world.read(fake.clients(), fake.object, OPTS)
    assert w.stop is None and w.spec is not None and w.lease_name
    assert [m.version for m in w.migrations or ()] == [1, 2] and w.database == p.ObservedDatabase(1, frozenset({1}))


# --- decide ---------------------------------------------------------------------------------------------

def test_decide_keeps_the_runs_as_they_were_when_no_job_was_read():
    old = {"lastJob": {"job": "app-g1-a", "outcome": "Succeeded"}, "history": [{"job": "app-g1-a"}]}
    w = world.World(obj=_obj(status=old), now="2026-01-01T00:00:00Z",
                    stop=observe.Blocked(reasons.INVALID_SPEC, "spec.x: bad"))
    d = reconcile.decide(w)
    assert d.decision is None and d.events == []
    assert d.runs == {"currentJob": None, "lastJob": old["lastJob"], "history": old["history"]}


def test_decide_plans_a_job_for_an_image_source():
    spec, target = world.spec_of(_obj())
    w = world.World(obj=_obj(), now="2026-01-01T00:00:00Z", spec=spec, target=target, lease_name="l", jobs=[],
                    source_key="registry.example/app-migrations:1|/migrations", database=p.ObservedDatabase(0))
    d = reconcile.decide(w)
    assert d.decision is not None and isinstance(d.decision.action, p.StartJob)
    assert d.decision.action.job.startswith(f"{NAME}-g3-")


# --- act ------------------------------------------------------------------------------------------------

class Batch:
    def __init__(self, refuse: ApiException | None = None):
        self.created: list[dict[str, Any]] = []
        self.refuse = refuse

    def create_namespaced_job(self, namespace: str, body: dict[str, Any]) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.created.append(body)


def _to_start() -> tuple[world.World, Any]:
    w = world.World(obj=_obj(), now="2026-01-01T00:00:00Z", lease_name="l", jobs=[],
                    database=p.ObservedDatabase(0))
    w.spec, w.target = world.spec_of(w.obj)
    d = reconcile.decide(w)
    assert d.decision is not None
    return w, d.decision


def test_act_asks_nothing_of_the_cluster_unless_a_job_is_to_start():
    assert act(SimpleNamespace(batch=Untouchable()), world.World(obj=_obj(), now="t"), None, OPTS) == Acted()


def test_act_creates_the_job_and_records_it_as_running():
    w, decision = _to_start()
    batch = Batch()
    done = act(SimpleNamespace(batch=batch), w, decision, OPTS)  # type: ignore[arg-type]
    assert done.created and done.blocked is None and len(batch.created) == 1
    assert done.current_job is not None and done.current_job["outcome"] == "Running"
    assert [e.reason for e in done.events] == [reasons.MIGRATION_STARTED]


def test_act_refuses_to_adopt_a_job_of_the_same_name_it_does_not_own():
    w, decision = _to_start()
    done = act(SimpleNamespace(batch=Batch(ApiException(status=409))), w, decision, OPTS)  # type: ignore[arg-type]
    assert not done.created and done.current_job is None
    assert done.blocked is not None and done.blocked.reason == reasons.JOB_CONFLICT


# --- compose --------------------------------------------------------------------------------------------

def test_compose_a_blocked_read_into_a_stalled_status_that_keeps_the_plan():
    w = world.World(obj=_obj(status={"plan": {"hash": "abc"}}), now="t",
                    stop=observe.Blocked(reasons.SECRET_NOT_FOUND, "Secret shop/db not found"))
    new = reconcile.compose(w, reconcile.decide(w), Acted())
    assert new["phase"] == "Failed" and new["plan"] == {"hash": "abc"} and new["observedGeneration"] == 3
    assert c.get(new["conditions"], c.STALLED)["reason"] == reasons.SECRET_NOT_FOUND


def test_compose_an_unreadable_database_while_a_job_runs_as_reconciling():
    w = world.World(obj=_obj(), now="t", jobs=[], stop=observe.Unreadable("app-g1-x", "timeout"))
    new = reconcile.compose(w, reconcile.decide(w), Acted())
    assert new["phase"] == "Migrating"
    assert c.get(new["conditions"], c.RECONCILING)["reason"] == reasons.DATABASE_UNREADABLE


def test_compose_records_the_job_the_act_step_started():
    w, decision = _to_start()
    d = reconcile.RoundDecision({"currentJob": None, "lastJob": None, "history": None}, [], decision)
    new = reconcile.compose(w, d, Acted(created=True, current_job={"job": "app-g3-x", "outcome": "Running"}))
    assert new["currentJob"] == {"job": "app-g3-x", "outcome": "Running"} and new["phase"] == "Migrating"


# --- write status, post Events --------------------------------------------------------------------------

class Custom:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def patch_namespaced_custom_object_status(self, *args: Any) -> None:
        self.patches.append(args[-1])


def test_status_is_written_only_when_it_changed():
    custom = Custom()
    k = SimpleNamespace(custom=custom)
    obj = _obj(status={"phase": "Ready", "pending": 0})
    assert not objects.write_status(k, api.PLURAL, obj, {"phase": "Ready", "pending": 0, "leaseHolder": None})
    assert objects.write_status(k, api.PLURAL, obj, {"phase": "Migrating", "pending": 0})
    assert custom.patches == [{"status": {"phase": "Migrating", "pending": 0}}]


def test_a_stalled_warning_is_added_only_when_no_warning_says_the_same():
    w = world.World(obj=_obj(), now="t")
    new = {"conditions": c.apply(None, c.stalled(reasons.JOB_REJECTED, "refused"), 3)}
    d = reconcile.RoundDecision({}, [events.Event(events.NORMAL, reasons.LINT_FINDINGS, "x")])
    assert [e.reason for e in reconcile.to_post(w, d, Acted(), new)] == [reasons.LINT_FINDINGS, reasons.JOB_REJECTED]
    # A Warning of another reason (lint findings) does not say why the Job could not start.
    d = reconcile.RoundDecision({}, [events.Event(events.WARNING, reasons.LINT_FINDINGS, "x")])
    assert [e.reason for e in reconcile.to_post(w, d, Acted(), new)] == [reasons.LINT_FINDINGS, reasons.JOB_REJECTED]
    d = reconcile.RoundDecision({}, [events.Event(events.WARNING, reasons.JOB_REJECTED, "x")])
    assert [e.reason for e in reconcile.to_post(w, d, Acted(), new)] == [reasons.JOB_REJECTED]


def test_one_truncation_rule_for_every_event():
    about = events.involved(api.API_VERSION, api.KIND, {"name": NAME, "namespace": NS, "uid": "u"})
    body = events.body(about, events.Event(events.WARNING, reasons.MIGRATION_FAILED, "x" * 5000), "t")
    assert len(body["message"]) == c.MESSAGE_LIMIT and body["message"].endswith("…")
    assert body["involvedObject"]["kind"] == "SchemaMigration"


@pytest.mark.parametrize("status", [403, 500])
def test_an_event_the_apiserver_refuses_is_logged_not_raised(status, caplog):
    class Core:
        def create_namespaced_event(self, *_: Any) -> None:
            raise ApiException(status=status, reason="nope")

    about = events.involved(api.API_VERSION, api.KIND, {"name": NAME, "namespace": NS})
    events.post(SimpleNamespace(core=Core()), about, [events.Event(events.NORMAL, reasons.UP_TO_DATE, "ok")])
    assert "could not post event UpToDate" in caplog.text
