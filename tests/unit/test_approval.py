"""Manual approval, lint blocking and backup in the policy step (pure: findings are given)."""

from __future__ import annotations

import dataclasses
import functools

from schemagate.api.v1alpha1 import SchemaMigrationSpec
from schemagate.controller import approval, policy
from schemagate.controller.plan_lint import Finding
from schemagate.controller.decide import ObservedDatabase, Inputs, StartJob, UpToDate, plan
from tests.unit.conftest import plan_inputs, migration_files, smig_spec

F1, F2, F3 = migration_files(1, 2, 3, up=((2, "SELECT 1;"),))
WARN = Finding("00002_m2.sql", 5, "warning", "adding-required-field", "makes it required")


spec = smig_spec
inputs = functools.partial(plan_inputs, migrations=(F1, F2, F3), db=ObservedDatabase(1, frozenset({1})))


def decide(i: Inputs, s: SchemaMigrationSpec, annotations=None, old=None, findings=()):
    return policy.decide(i, plan(i), s, annotations=annotations or {}, old=old or {}, findings=list(findings))


def test_automatic_runs_and_shows_the_plan():
    d = decide(inputs(), spec())
    assert isinstance(d.action, StartJob) and d.approved is None and d.backup_file is None
    assert [m["file"] for m in d.plan["migrations"]] == ["00002_m2.sql", "00003_m3.sql"]
    assert (d.plan["fromVersion"], d.plan["toVersion"], d.plan["direction"]) == (1, 3, "up")
    assert d.plan["migrations"][0]["statements"] == 1 and d.plan["migrations"][0]["sha256"] == "sha2"


def test_manual_waits_with_the_hash_and_how_to_approve():
    d = decide(inputs(), spec(approval="Manual"))
    assert isinstance(d.action, approval.AwaitingApproval) and d.action.state == "Pending"
    h = d.plan["hash"]
    assert d.plan["approval"] == "Pending" and f"schemagate.io/approve={h}" in d.action.message
    assert [e.reason for e in d.events] == ["AwaitingApproval"]


def test_approval_of_exactly_this_plan_runs_it():
    h = decide(inputs(), spec(approval="Manual")).plan["hash"]
    d = decide(inputs(), spec(approval="Manual"), {"schemagate.io/approve": h})
    assert isinstance(d.action, StartJob) and d.approved == h and d.plan["approval"] == "Approved"


def test_stale_approval_applies_nothing_and_says_so():
    h = decide(inputs(), spec(approval="Manual")).plan["hash"]
    changed = inputs(migrations=(F1, F2, dataclasses.replace(F3, sha256="edited")))
    d = decide(changed, spec(approval="Manual"), {"schemagate.io/approve": h})
    assert isinstance(d.action, approval.AwaitingApproval) and d.action.state == "Stale"
    assert d.plan["hash"] != h and f"approval {h} is stale" in d.action.message
    assert "nothing was applied" in d.action.message and [e.reason for e in d.events] == ["ApprovalStale"]


def test_an_approval_already_used_is_not_called_stale():
    h = "0123456789ab"
    old = {"lastJob": {"job": "app-g1-x", "approved": h}}
    d = decide(inputs(), spec(approval="Manual"), {"schemagate.io/approve": h}, old)
    assert isinstance(d.action, approval.AwaitingApproval) and d.action.state == "Pending"


def test_the_hash_changes_with_database_version_target_backup_and_retry():
    base = decide(inputs(), spec()).plan["hash"]
    others = [decide(inputs(db=ObservedDatabase(2, frozenset({1, 2}))), spec()).plan["hash"],
              decide(inputs(target=2), spec()).plan["hash"],
              decide(inputs(), spec(backup={"claimName": "b"})).plan["hash"],
              decide(inputs(retry="1"), spec()).plan["hash"]]
    assert len({base, *others}) == 5


def test_lint_findings_reported_but_not_blocking_by_default():
    d = decide(inputs(), spec(), findings=[WARN])
    assert isinstance(d.action, StartJob)
    assert d.plan["lint"] == [WARN.to_status()]
    (event,) = d.events
    assert event.reason == "LintFindings" and "00002_m2.sql:5" in event.message


def test_findings_event_once_per_plan():
    first = decide(inputs(), spec(), findings=[WARN])
    again = decide(inputs(), spec(), old={"plan": first.plan}, findings=[WARN])
    assert again.events == []


def test_fail_on_warning_blocks_before_anything_runs():
    d = decide(inputs(), spec(lint={"failOn": "warning"}), findings=[WARN])
    assert d.action.reason == "LintFailed" and "adding-required-field" in d.action.message
    assert d.backup_file is None


def test_fail_on_error_lets_warnings_through():
    assert isinstance(decide(inputs(), spec(lint={"failOn": "error"}), findings=[WARN]).action, StartJob)


def test_lint_that_cannot_run_blocks_only_when_asked():
    i = inputs()
    d = policy.decide(i, plan(i), spec(), annotations={}, old={}, findings=None, lint_error="squawk is not installed")
    assert isinstance(d.action, StartJob) and [e.reason for e in d.events] == ["LintUnavailable"]
    d = policy.decide(i, plan(i), spec(lint={"failOn": "error"}), annotations={}, old={}, findings=None,
                      lint_error="squawk is not installed")
    assert d.action.reason == "LintFailed"


def test_backup_file_is_named_after_the_job():
    d = decide(inputs(), spec(backup={"claimName": "db-backups"}))
    assert isinstance(d.action, StartJob) and d.backup_file == f"{d.action.job}.dump"


def test_up_to_date_keeps_the_last_plan():
    old = {"plan": {"hash": "abc"}}
    d = decide(inputs(db=ObservedDatabase(3, frozenset({1, 2, 3}))), spec(approval="Manual"), old=old)
    assert isinstance(d.action, UpToDate) and d.plan == old["plan"]


def test_rollback_plan_lists_down_steps_newest_first():
    i = inputs(db=ObservedDatabase(3, frozenset({1, 2, 3})), target=1, allow_downgrade=True)
    d = decide(i, spec(approval="Manual"))
    assert d.plan["direction"] == "down" and [m["version"] for m in d.plan["migrations"]] == [3, 2]


def test_a_spec_edit_does_not_rerun_a_failed_plan_on_its_used_approval():
    i = inputs()
    h = decide(i, spec(approval="Manual")).plan["hash"]
    ran = decide(i, spec(approval="Manual"), {"schemagate.io/approve": h})
    assert isinstance(ran.action, StartJob)
    # The approved Job failed, its transaction rolled back: the database is where it was.
    old = {"plan": ran.plan, "lastJob": {"job": ran.action.job, "outcome": "Failed", "approved": h},
           "history": [{"job": ran.action.job, "outcome": "Failed", "approved": h}]}
    edited = dataclasses.replace(i, generation=2)  # e.g. spec.job.resources raised
    d = decide(edited, spec(approval="Manual"), {"schemagate.io/approve": h}, old)
    assert isinstance(d.action, approval.AwaitingApproval) and d.action.state == "Pending"
    assert d.plan["hash"] != h
