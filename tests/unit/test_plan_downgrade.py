"""Rollback in the pure plan: only with allowDowngrade and an explicit target, never without a Down section."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from schemagate.controller.decide import (ObservedDatabase, JobState, Refuse, StartJob, UpToDate, plan,
                                        rollback_steps)
from tests.unit.conftest import plan_inputs, migration_files

F1, F2, F3 = migration_files(1, 2, 3)
AT3 = ObservedDatabase(3, frozenset({1, 2, 3}))


inputs = functools.partial(plan_inputs, generation=2, target=1, migrations=(F1, F2, F3), db=AT3,
                           allow_downgrade=True)


def test_allowed_downgrade_runs_down_to_the_target():
    action = plan(inputs())
    assert isinstance(action, StartJob)
    assert (action.command, action.target, action.pending) == ("down", 1, 2)


def test_rollback_order_is_newest_first():
    assert [m.version for m in rollback_steps([F1, F2, F3], AT3, 0)] == [3, 2, 1]


@pytest.mark.parametrize("over, words", [
    ({"allow_downgrade": False}, "set spec.allowDowngrade: true"),
    ({"target": None, "db": ObservedDatabase(4, frozenset({1, 2, 4}))}, "targetVersion is latest, which never rolls back"),
])
def test_downgrade_not_allowed(over, words):
    action = plan(inputs(**over))
    assert isinstance(action, Refuse) and action.reason == "DowngradeNotAllowed"
    assert "past the target" in action.message and words in action.message


def test_missing_down_section_blocks_before_anything_runs():
    no_down = dataclasses.replace(F2, has_down=False)
    action = plan(inputs(migrations=(F1, no_down, F3)))
    assert isinstance(action, Refuse) and action.reason == "NoDownMigration"
    assert "00002_m2.sql has no `-- +goose Down` section" in action.message and "nothing was run" in action.message


def test_a_file_below_the_target_without_down_does_not_matter():
    action = plan(inputs(migrations=(dataclasses.replace(F1, has_down=False), F2, F3)))
    assert isinstance(action, StartJob) and action.command == "down"


def test_applied_version_without_a_file_blocks_the_rollback():
    action = plan(inputs(db=ObservedDatabase(4, frozenset({1, 2, 3, 4})), target=2))
    assert isinstance(action, Refuse) and action.reason == "NoDownMigration" and "version 4" in action.message


def test_up_and_down_to_the_same_target_are_different_jobs():
    down = plan(inputs())
    up = plan(inputs(db=ObservedDatabase(0, frozenset())))
    assert isinstance(down, StartJob) and isinstance(up, StartJob) and down.job != up.job and up.command == "up"


def test_after_the_rollback_the_target_is_reached():
    assert plan(inputs(db=ObservedDatabase(1, frozenset({1})))) == UpToDate(1, 1)


def test_succeeded_rollback_still_above_target_is_a_verification_failure():
    job = plan(inputs())
    assert isinstance(job, StartJob)
    action = plan(inputs(jobs=(JobState(job.job, "Succeeded"),)))
    assert isinstance(action, Refuse) and action.reason == "VerificationFailed" and "roll back" in action.message
