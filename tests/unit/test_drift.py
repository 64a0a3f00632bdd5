"""Accepting an edited migration's new checksum from Kubernetes (pure)."""

from __future__ import annotations

import functools

from schemagate.controller import drift
from schemagate.controller.decide import ObservedDatabase, JobState, MigrationFile, Refuse, StartJob, WaitForJob, plan
from tests.unit.conftest import plan_inputs

SHA_NEW = "b" * 64
F1 = MigrationFile(1, "00001_a.sql", SHA_NEW)
DB = ObservedDatabase(1, frozenset({1}), checksums=((1, "a" * 64),))


inputs = functools.partial(plan_inputs, migrations=(F1,), db=DB)


def resolve(annotation, **over):
    i = inputs(**over)
    refused = plan(i)
    assert isinstance(refused, Refuse) and refused.reason == "ChecksumMismatch"
    return drift.resolve(i, refused, annotation)


def test_mismatch_names_the_file_and_the_exact_annotation():
    action = resolve(None)
    assert isinstance(action, Refuse) and "00001_a.sql (version 1) changed" in action.message
    assert f"kubectl annotate smig/app schemagate.io/accept-checksum=1:{SHA_NEW} --overwrite" in action.message


def test_matching_annotation_runs_accept_checksum():
    action = resolve(f"1:{SHA_NEW}")
    assert isinstance(action, StartJob) and action.command == "accept-checksum" and action.target == 1


def test_annotation_for_other_content_accepts_nothing():
    action = resolve(f"1:{'c' * 64}")
    assert isinstance(action, Refuse) and "nothing accepted" in action.message and "is now bbbbbbbbbbbb" in action.message


def test_malformed_annotation_is_explained():
    action = resolve("yes please")
    assert isinstance(action, Refuse) and "is not <version>:<sha256>" in action.message


def test_running_and_failed_accept_jobs():
    job = drift.accept_job(inputs(), 1, SHA_NEW)
    assert isinstance(resolve(f"1:{SHA_NEW}", jobs=(JobState(job, "Running"),)), WaitForJob)
    failed = resolve(f"1:{SHA_NEW}", jobs=(JobState(job, "Failed", message="boom"),))
    assert isinstance(failed, Refuse) and job in failed.message
