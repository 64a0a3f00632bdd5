"""Job outcomes are copied into status once (Jobs may be TTL-deleted) and produce one Event each."""

from __future__ import annotations

from schemagate.controller import decide as p
from schemagate.controller.observe import JobInfo
from schemagate.controller.status import absorb_jobs, compose, for_action, prior_runs, stalled_event
from schemagate.api import conditions as c

NOW = "2026-01-01T00:01:00Z"


def info(name, phase, result=None, message=None, started="2026-01-01T00:00:00Z", finished="2026-01-01T00:00:30Z"):
    return JobInfo(p.JobState(name, phase, result, message), started, finished if phase != "Running" else None)


OK = {"ok": True, "versionBefore": 1, "versionAfter": 3, "applied": [{"version": 2}, {"version": 3}]}
FAILED = {"ok": False, "versionBefore": 1, "versionAfter": 1, "applied": [],
          "error": {"reason": "MigrationFailed", "message": "00002_x.sql: boom", "file": "00002_x.sql"}}


def test_running_job_becomes_current_job():
    runs, events = absorb_jobs({}, [info("a-g1-x", "Running")], NOW)
    assert runs["currentJob"]["job"] == "a-g1-x" and runs["currentJob"]["outcome"] == "Running"
    assert runs["lastJob"] is None and events == []


def test_success_is_recorded_once_with_versions_and_duration():
    old = {"currentJob": {"job": "a-g1-x", "outcome": "Running", "versionBefore": 1, "targetVersion": 3}}
    runs, events = absorb_jobs(old, [info("a-g1-x", "Succeeded", OK)], NOW)
    last = runs["lastJob"]
    assert (last["outcome"], last["versionBefore"], last["versionAfter"], last["applied"]) == ("Succeeded", 1, 3, 2)
    assert last["durationSeconds"] == 30.0 and last["targetVersion"] == 3
    assert runs["currentJob"] is None and runs["history"] == [last]
    assert [(e.type, e.reason) for e in events] == [("Normal", "MigrationSucceeded")]
    again, events_again = absorb_jobs(runs, [info("a-g1-x", "Succeeded", OK)], NOW)
    assert again["history"] == runs["history"] and events_again == []


def test_failure_is_recorded_with_the_runner_error():
    runs, events = absorb_jobs({}, [info("a-g1-x", "Failed", FAILED)], NOW)
    assert runs["lastJob"]["reason"] == "MigrationFailed" and "00002_x.sql: boom" in runs["lastJob"]["message"]
    assert [(e.type, e.reason) for e in events] == [("Warning", "MigrationFailed")]
    assert prior_runs(runs) == (p.PriorRun("a-g1-x", "Failed", "MigrationFailed", runs["lastJob"]["message"]),)


def test_failure_without_json_uses_the_last_log_line():
    runs, _ = absorb_jobs({}, [info("a-g1-x", "Failed", None, "Traceback\nRuntimeError: out of memory")], NOW)
    assert runs["lastJob"]["reason"] == "JobFailed" and "RuntimeError: out of memory" in runs["lastJob"]["message"]


def test_history_is_bounded_newest_first():
    old = {"history": [{"job": f"a-g{i}-x", "outcome": "Succeeded"} for i in range(10, 0, -1)]}
    runs, _ = absorb_jobs(old, [info("a-g11-x", "Succeeded", OK)], NOW)
    assert len(runs["history"]) == 10 and runs["history"][0]["job"] == "a-g11-x"


def test_status_for_each_action():
    db = p.ObservedDatabase(1, frozenset({1}))
    phase, desired, fields = for_action(p.UpToDate(3, 3), db)
    assert phase == "Ready" and fields == {"currentVersion": 3, "targetVersion": 3, "pending": 0}
    phase, desired, fields = for_action(p.WaitForLease("ns/other", "a-g1-x", 3, 2), db)
    assert phase == "Waiting" and fields["leaseHolder"] == "ns/other" and desired[1].reason == "WaitingForLease"
    phase, desired, fields = for_action(p.Refuse("MigrationFailed", "boom", 3, 2), db)
    assert phase == "Failed" and desired[2] == c.Desired("Stalled", "True", "MigrationFailed", "boom")


def test_compose_clears_the_lease_holder_and_sets_observed_generation():
    old = {"leaseHolder": "ns/other", "phase": "Waiting"}
    phase, desired, fields = for_action(p.UpToDate(3, 3), p.ObservedDatabase(3))
    status = compose(old, 7, phase, desired, fields, {"currentJob": None, "lastJob": None, "history": None}, "l")
    assert status["leaseHolder"] is None and status["observedGeneration"] == 7 and status["leaseName"] == "l"
    assert {x["observedGeneration"] for x in status["conditions"]} == {7}


def test_stalled_event_only_on_entering_or_changing_reason():
    def status(reason):
        return {"conditions": c.apply(None, c.stalled(reason, "m"), 1)}

    assert stalled_event({}, status("SecretNotFound")).reason == "SecretNotFound"
    assert stalled_event(status("SecretNotFound"), status("SecretNotFound")) is None
    assert stalled_event(status("SecretNotFound"), status("ConnectionFailed")).reason == "ConnectionFailed"
    ready = {"conditions": c.apply(None, c.ready("ok"), 1)}
    assert stalled_event(status("SecretNotFound"), ready) is None


def _merge_patch(target, patch):
    """RFC 7386, as the apiserver applies the status patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def test_a_new_run_record_keeps_nothing_of_the_previous_one_once_patched():
    old = {"lastJob": {"job": "a-g1-x", "outcome": "Succeeded", "versionAfter": 3, "applied": 2,
                       "backup": "a-g1-x.dump"},
           "currentJob": {"job": "a-g2-y", "outcome": "Running", "startedAt": "2026-01-01T00:00:00Z"}}
    killed = info("a-g2-y", "Failed", None, "DeadlineExceeded")  # no JSON result: no versions, no backup
    runs, _ = absorb_jobs(old, [killed], NOW)
    phase, desired, fields = for_action(p.Refuse("JobFailed", "x"), p.ObservedDatabase(3))
    stored = _merge_patch(old, compose(old, 2, phase, desired, fields, runs, "l"))
    assert stored["lastJob"]["job"] == "a-g2-y" and stored["lastJob"]["outcome"] == "Failed"
    assert not {"versionAfter", "applied", "backup"} & stored["lastJob"].keys()
    assert "currentJob" not in stored


def _finished_jobs(n):
    """n finished Jobs created a minute apart, oldest first, as they stay listed until their TTL (a day)."""
    return [JobInfo(p.JobState(f"a-g{i}-x", "Succeeded", OK), f"2026-01-01T{i // 60:02d}:{i % 60:02d}:05Z",
                    f"2026-01-01T{i // 60:02d}:{i % 60:02d}:35Z", f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00Z")
            for i in range(1, n + 1)]


def test_jobs_that_fell_out_of_the_history_are_not_recorded_again():
    infos = _finished_jobs(13)
    runs, events = absorb_jobs({}, infos, NOW)
    assert len(events) == 13 and runs["lastJob"]["job"] == "a-g13-x"
    assert [r["job"] for r in runs["history"]] == [f"a-g{i}-x" for i in range(13, 3, -1)]
    for _ in range(5):  # every resync sees the same Jobs, the three oldest no longer in history
        again, events = absorb_jobs(runs, infos, NOW)
        assert events == [] and again == runs


def test_a_new_job_after_a_full_history_is_recorded_and_the_old_ones_stay_out():
    infos = _finished_jobs(14)
    runs, _ = absorb_jobs({}, infos[:13], NOW)
    runs, events = absorb_jobs(runs, infos, NOW)
    assert [e.message for e in events] == ["Job a-g14-x migrated the database to version 3"]
    assert runs["lastJob"]["job"] == "a-g14-x" and runs["history"][-1]["job"] == "a-g5-x"
    runs, events = absorb_jobs(runs, infos, NOW)
    assert events == [] and runs["lastJob"]["job"] == "a-g14-x"


def test_an_older_job_finishing_late_is_recorded_but_last_job_stays_the_newest():
    older, newer = _finished_jobs(2)
    runs, _ = absorb_jobs({}, [newer, JobInfo(p.JobState(older.state.name, "Running"), older.started, None,
                                              older.created)], NOW)
    runs, events = absorb_jobs(runs, [older, newer], NOW)
    assert len(events) == 1 and runs["lastJob"]["job"] == "a-g2-x"
    assert [r["job"] for r in runs["history"]] == ["a-g2-x", "a-g1-x"]


def test_history_written_before_creation_times_were_recorded_orders_by_start():
    infos = _finished_jobs(12)
    legacy = [{"job": i.state.name, "outcome": "Succeeded", "startedAt": i.started} for i in reversed(infos[2:])]
    runs, events = absorb_jobs({"history": legacy, "lastJob": legacy[0]}, infos, NOW)
    assert events == [] and runs["lastJob"]["job"] == "a-g12-x"


def test_applied_counts_the_entries_a_trimmed_termination_message_left_out():
    from schemagate.migrate import result

    applied = [{"version": v, "file": f"{v:05d}_create_table_number_{v}.sql", "direction": "up", "durationMs": 1}
               for v in range(1, 301)]
    doc = {"schemagate": 1, "command": "up", "ok": True, "versionBefore": 0, "versionAfter": 300,
           "applied": applied, "pending": [], "error": None}
    trimmed = result.shrink(doc)  # what the Job's termination message holds
    assert trimmed["appliedOmitted"] > 0
    runs, _ = absorb_jobs({}, [info("a-g1-x", "Succeeded", trimmed)], NOW)
    assert runs["lastJob"]["applied"] == 300


def test_the_pods_of_jobs_status_accounts_for_are_not_read_every_resync():
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from kubernetes import client

    from schemagate.controller import observe
    from schemagate.controller.status import Recorded

    def job(i):
        at = datetime(2026, 1, 1, 0, i, tzinfo=timezone.utc)
        return client.V1Job(
            metadata=client.V1ObjectMeta(name=f"a-g{i}-x", creation_timestamp=at, owner_references=[
                client.V1OwnerReference(api_version="v1", kind="SchemaMigration", name="a", uid="u")]),
            status=client.V1JobStatus(start_time=at, conditions=[
                client.V1JobCondition(type="Complete", status="True", last_transition_time=at)]))

    class Api:
        read: list[str] = []

        def list_namespaced_job(self, namespace, label_selector):
            return SimpleNamespace(items=[job(i) for i in range(1, 13)])

        def list_namespaced_pod(self, namespace, label_selector):
            self.read.append(label_selector)
            return SimpleNamespace(items=[])

    api = Api()
    runs, events = absorb_jobs({}, observe.jobs(api, api, "ns", "a", "u"), NOW)
    assert len(api.read) == 12 and len(events) == 12 and runs["history"][0]["createdAt"] == "2026-01-01T00:12:00Z"
    api.read.clear()
    again, events = absorb_jobs(runs, observe.jobs(api, api, "ns", "a", "u", Recorded(runs["history"])), NOW)
    assert api.read == [] and events == [] and again == runs


def test_ahead_of_source_is_ready_naming_the_versions():
    phase, desired, fields = for_action(p.UpToDate(30, 20, tuple(range(21, 31))), p.ObservedDatabase(30))
    ready = next(d for d in desired if d.type == "Ready")
    assert (phase, ready.status, ready.reason) == ("Ready", "True", "AheadOfSource")
    assert "version 20" in ready.message and "21, 22" in ready.message and fields["currentVersion"] == 30
