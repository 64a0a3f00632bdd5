"""The pure plan, table-driven: what the operator does for each state of files, database, Jobs, Lease."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from schemagate.controller.decide import (ObservedDatabase, Inputs, JobState, LeaseState, MigrationFile, PriorRun, Refuse, StartJob,
                                        UpToDate, WaitForJob, WaitForLease, job_name, plan, plan_hash)
from tests.unit.conftest import plan_inputs, migration_files

F1, F2, F3 = FILES = migration_files(1, 2, 3)
inputs = functools.partial(plan_inputs, migrations=FILES)


def desired_job(i: Inputs, target: int = 3) -> str:
    return job_name(i.name, i.generation, plan_hash(target, i.migrations, i.retry))


def test_fresh_database_runs_up_to_latest():
    i = inputs()
    action = plan(i)
    assert action == StartJob(desired_job(i), plan_hash(3, FILES, None), 3, 3)


def test_up_to_date_does_nothing():
    assert plan(inputs(db=ObservedDatabase(3, frozenset({1, 2, 3})))) == UpToDate(3, 3)


def test_explicit_target_runs_only_up_to_it():
    i = inputs(target=2, db=ObservedDatabase(1, frozenset({1})))
    action = plan(i)
    assert isinstance(action, StartJob) and action.target == 2 and action.pending == 1


def test_empty_source_is_refused_not_reported_ready():
    action = plan(inputs(migrations=()))
    assert isinstance(action, Refuse) and action.reason == "NoMigrationFiles"


@pytest.mark.parametrize("over, reason, words", [
    ({"target": 7}, "TargetNotFound", "targetVersion 7"),
    ({"target": 3, "db": ObservedDatabase(5, frozenset({1, 2, 3, 5}))}, "DowngradeNotAllowed", "past the target 3"),
    ({"db": ObservedDatabase(3, frozenset({1, 3}))}, "MissingMigrations", "00002_m2.sql"),
])
def test_refusals_say_why(over, reason, words):
    action = plan(inputs(**over))
    assert isinstance(action, Refuse) and action.reason == reason and words in action.message


def test_edited_applied_migration_is_refused_not_ignored():
    db = ObservedDatabase(3, frozenset({1, 2, 3}), checksums=((1, "sha1"), (2, "was-different")))
    action = plan(inputs(db=db))
    assert isinstance(action, Refuse) and action.reason == "ChecksumMismatch"
    assert "00002_m2.sql (version 2) changed after it was applied" in action.message


def test_applied_versions_without_recorded_checksum_are_trusted():
    assert plan(inputs(db=ObservedDatabase(3, frozenset({1, 2, 3}), checksums=((1, "sha1"),)))) == UpToDate(3, 3)


def test_running_job_is_waited_for_not_duplicated():
    i = inputs()
    name = desired_job(i)
    assert plan(dataclasses.replace(i, jobs=(JobState(name, "Running"),))) == WaitForJob(name, 3, 3)


def test_older_running_job_of_the_same_resource_is_waited_for():
    i = inputs(generation=2)
    action = plan(dataclasses.replace(i, jobs=(JobState("app-g1-aaaaaaaa", "Running"),)))
    assert action == WaitForJob("app-g1-aaaaaaaa", 3, 3)


def test_failed_job_is_not_retried_and_reports_the_sql_error():
    i = inputs(db=ObservedDatabase(1, frozenset({1})))
    name = desired_job(i)
    result = {"ok": False, "error": {"reason": "MigrationFailed", "message": 'relation "x" does not exist',
                                     "file": "00002_m2.sql", "line": 4, "statement": "ALTER TABLE x\n ADD y int",
                                     "sqlstate": "42P01"}}
    action = plan(dataclasses.replace(i, jobs=(JobState(name, "Failed", result),)))
    assert isinstance(action, Refuse) and action.reason == "MigrationFailed" and action.job == name
    for words in ("00002_m2.sql:4", 'relation "x" does not exist', "42P01", "ALTER TABLE x ADD y int"):
        assert words in action.message


def test_failed_job_remembered_after_ttl_deletion():
    i = inputs(db=ObservedDatabase(1, frozenset({1})))
    name = desired_job(i)
    action = plan(dataclasses.replace(i, runs=(PriorRun(name, "Failed", "MigrationFailed", "boom"),)))
    assert action == Refuse("MigrationFailed", "boom", 3, 2, name)


def test_recorded_failure_wins_over_the_job_whose_result_is_no_longer_read():
    i = inputs(db=ObservedDatabase(1, frozenset({1})))
    name = desired_job(i)
    action = plan(dataclasses.replace(i, jobs=(JobState(name, "Failed"),),
                                      runs=(PriorRun(name, "Failed", "MigrationFailed", "00002: boom"),)))
    assert action == Refuse("MigrationFailed", "00002: boom", 3, 2, name)


def test_retry_annotation_makes_a_new_plan():
    i = inputs(db=ObservedDatabase(1, frozenset({1})))
    name = desired_job(i)
    failed = dataclasses.replace(i, runs=(PriorRun(name, "Failed", "MigrationFailed", "boom"),), retry="1")
    action = plan(failed)
    assert isinstance(action, StartJob) and action.job != name


def test_fixed_migration_makes_a_new_plan_but_partial_progress_does_not():
    fixed = (F1, dataclasses.replace(F2, sha256="fixed"), F3)
    assert plan_hash(3, fixed, None) != plan_hash(3, FILES, None)
    # Applying 1 of 3 changes pending, not the plan: the failed Job is not re-run automatically.
    before = desired_job(inputs())
    assert desired_job(inputs(db=ObservedDatabase(1, frozenset({1})))) == before


def test_added_migration_makes_a_new_plan():
    f4 = MigrationFile(4, "00004_m4.sql", "sha4")
    i = inputs(migrations=FILES + (f4,), db=ObservedDatabase(3, frozenset({1, 2, 3})))
    action = plan(i)
    assert isinstance(action, StartJob) and action.target == 4 and action.pending == 1
    assert action.job != desired_job(inputs())


def test_succeeded_job_but_database_behind_is_a_verification_failure():
    i = inputs(db=ObservedDatabase(1, frozenset({1})))
    action = plan(dataclasses.replace(i, jobs=(JobState(desired_job(i), "Succeeded"),)))
    assert isinstance(action, Refuse) and action.reason == "VerificationFailed"


def test_lease_held_by_someone_else_waits_with_holder():
    i = inputs(lease=LeaseState("other-ns/other-g1-12345678"))
    action = plan(i)
    assert action == WaitForLease("other-ns/other-g1-12345678", desired_job(i), 3, 3)


@pytest.mark.parametrize("lease", [LeaseState(None), LeaseState("x/y", expired=True)])
def test_free_or_expired_lease_runs(lease):
    assert isinstance(plan(inputs(lease=lease)), StartJob)


def test_lease_held_by_our_own_job_is_not_a_reason_to_wait():
    i = inputs()
    assert isinstance(plan(dataclasses.replace(i, lease=LeaseState(f"ns/{desired_job(i)}"))), StartJob)


def test_image_source_runs_once_per_plan_and_then_reports_the_database():
    i = inputs(migrations=None, source_key="img:1|/m")
    run = plan(i)
    assert isinstance(run, StartJob) and run.pending is None
    done = dataclasses.replace(i, db=ObservedDatabase(9, frozenset({9})), runs=(PriorRun(run.job, "Succeeded"),))
    assert plan(done) == UpToDate(9, 9)


def test_job_names_are_deterministic_and_bounded():
    long = "a" * 80
    name = job_name(long, 12, "deadbeef")
    assert name == job_name(long, 12, "deadbeef") and len(name) <= 52 and name.endswith("-g12-deadbeef")


def test_a_source_that_is_a_prefix_of_the_database_is_ready_ahead_of_source_under_latest():
    """Two SchemaMigrations on one database, files 1-3 and 1-5: the shorter one has reached its latest."""
    action = plan(inputs(db=ObservedDatabase(5, frozenset({1, 2, 3, 4, 5}))))
    assert action == UpToDate(5, 3, (4, 5))


def test_lease_held_by_a_job_that_is_gone_does_not_wait():
    i = inputs(lease=LeaseState(holder="ns/other-g1-abc", expired=False, holder_gone=True))
    assert isinstance(plan(i), StartJob)
