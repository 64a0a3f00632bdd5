"""files_digest pins a migration Job to the files the operator planned with (and a Manual approval approved)."""

from __future__ import annotations

import functools

from schemagate.api.v1alpha1 import SchemaMigrationSpec
from schemagate.controller import decide as p
from schemagate.controller.jobs import command, plan_digest
from schemagate.migrate.source import digest_versions, files_digest, load_files, run_digest
from tests.unit.conftest import job_request, smig_spec

V = "-- +goose Up\nCREATE TABLE t{n} (id int);\n-- +goose Down\nDROP TABLE t{n};\n"
FILES = {f"0000{n}_t{n}.sql": V.format(n=n) for n in (1, 2, 3)}


def as_planned(files: dict[str, str]) -> tuple[p.MigrationFile, ...]:
    """What observe.migration_files hands the planner: the same loader's versions, names and checksums."""
    return tuple(p.MigrationFile(m.version, m.file, m.sha256, m.parsed.has_down) for m in load_files(files))


def runner_digest(files: dict[str, str], target: int | None, rollback: tuple[int, ...] = ()) -> str:
    """What `schemagate migrate --expect-digest` computes over the files its pod mounted."""
    loaded = load_files(files)
    return run_digest([(m.version, m.file, m.sha256) for m in loaded], target, rollback)


def test_digest_is_sha256_hex_and_ignores_order():
    rows = [(1, "00001_a.sql", "aa"), (2, "00002_b.sql", "bb")]
    digest = files_digest(rows, {1, 2})
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert files_digest(list(reversed(rows)), {2, 1}) == digest


def test_digest_changes_with_content_name_added_and_removed_files():
    rows = [(1, "00001_a.sql", "aa"), (2, "00002_b.sql", "bb")]
    base = files_digest(rows, {1, 2, 3})
    assert files_digest([(1, "00001_a.sql", "aX"), rows[1]], {1, 2, 3}) != base
    assert files_digest([(1, "00001_renamed.sql", "aa"), rows[1]], {1, 2, 3}) != base
    assert files_digest([*rows, (3, "00003_c.sql", "cc")], {1, 2, 3}) != base
    assert files_digest(rows[:1], {1, 2, 3}) != base


def test_digest_covers_only_the_versions_given():
    rows = [(1, "00001_a.sql", "aa"), (2, "00002_b.sql", "bb")]
    assert files_digest(rows, {1}) == files_digest([rows[0], (2, "00002_b.sql", "edited")], {1})


def test_versions_are_up_to_the_target_plus_the_rolled_back_ones():
    assert digest_versions([1, 2, 3, 4], 2) == {1, 2}
    assert digest_versions([1, 2, 3, 4], None) == {1, 2, 3, 4}
    assert digest_versions([1, 2, 3, 4], 1, (3, 2)) == {1, 2, 3}
    assert digest_versions([1, 2, 3, 4], 0, (1,)) == {1}


def test_operator_and_runner_compute_the_same_digest_for_up():
    digest, rollback = plan_digest(as_planned(FILES), "up", 3, p.ObservedDatabase(0))
    assert rollback == () and digest == runner_digest(FILES, 3)


def test_up_digest_moves_exactly_when_the_plan_hash_does():
    planned = as_planned(FILES)
    digest, _ = plan_digest(planned, "up", 2, p.ObservedDatabase(0))
    above = {**FILES, "00003_t3.sql": FILES["00003_t3.sql"] + "-- edited\n"}
    below = {**FILES, "00002_t2.sql": FILES["00002_t2.sql"] + "-- edited\n"}
    # a file past the target runs in neither plan: approving version 2 did not approve it
    assert runner_digest(above, 2) == digest
    assert p.plan_hash(2, as_planned(above), None) == p.plan_hash(2, planned, None)
    assert runner_digest(below, 2) != digest
    assert p.plan_hash(2, as_planned(below), None) != p.plan_hash(2, planned, None)


def test_a_file_added_under_the_target_changes_the_up_digest():
    files = {f"0000{n}_t{n}.sql": V.format(n=n) for n in (1, 3, 4)}
    digest, _ = plan_digest(as_planned(files), "up", 3, p.ObservedDatabase(0))
    assert runner_digest({**files, "00002_late.sql": V.format(n=2)}, 3) != digest
    assert runner_digest({**files, "00005_next.sql": V.format(n=5)}, 3) == digest


def test_down_digest_covers_the_rolled_back_files():
    planned = as_planned(FILES)
    db = p.ObservedDatabase(3, frozenset({1, 2, 3}))
    digest, rollback = plan_digest(planned, "down", 1, db)
    assert rollback == (3, 2)
    assert runner_digest(FILES, 1, rollback) == digest
    edited = {**FILES, "00003_t3.sql": FILES["00003_t3.sql"].replace("DROP TABLE t3", "DROP TABLE t3 CASCADE")}
    assert runner_digest(edited, 1, rollback) != digest
    assert runner_digest({k: v for k, v in FILES.items() if not k.startswith("00003")}, 1, rollback) != digest


def test_no_digest_without_files_or_for_accept_checksum():
    assert plan_digest(None, "up", None, p.ObservedDatabase(0)) == (None, ())
    assert plan_digest(as_planned(FILES), "accept-checksum", 2, p.ObservedDatabase(2, frozenset({1, 2}))) == (None, ())


def _spec(source: dict) -> SchemaMigrationSpec:
    return smig_spec(source=source)


_request = functools.partial(job_request, target=3)


def test_job_args_carry_the_digest_for_configmap_sources():
    digest = "ab" * 32
    args = command(_spec({"configMaps": ["m"]}), _request(expect_digest=digest), "team")
    assert args[args.index("--expect-digest") + 1] == digest
    assert "--expect-rollback" not in args
    assert args[-2:] == ["up-to", "3"]


def test_down_job_args_name_the_rolled_back_versions():
    args = command(_spec({"configMaps": ["m"]}),
                   _request(command="down", target=1, expect_digest="cd" * 32, expect_rollback=(3, 2)), "team")
    assert args[args.index("--expect-rollback") + 1] == "3,2"
    assert args[-2:] == ["down-to", "1"]


def test_image_sources_get_no_digest():
    args = command(_spec({"image": {"image": "registry.example/app-migrations:1"}}),
                   _request(expect_digest="ab" * 32), "team")
    assert "--expect-digest" not in args and "--expect-rollback" not in args


class _Batch:
    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def create_namespaced_job(self, namespace: str, body: dict) -> None:
        self.bodies.append(body)


def test_the_created_job_carries_the_digest_of_the_planned_files():
    from types import SimpleNamespace

    from schemagate.controller.config import Options
    from schemagate.controller.act import create_job as _create_job

    obj = {"metadata": {"name": "app", "namespace": "team", "uid": "u-1", "generation": 1}}
    batch = _Batch()
    _create_job(SimpleNamespace(batch=batch), obj, _spec({"configMaps": ["m"]}), p.StartJob("app-g1-x", "x", 3, 3),
                lease_name="l", retry=None, opts=Options(), files=as_planned(FILES), db=p.ObservedDatabase(0))
    (body,) = batch.bodies
    args = body["spec"]["template"]["spec"]["containers"][0]["command"]
    assert args[args.index("--expect-digest") + 1] == runner_digest(FILES, 3)


def test_a_source_changed_job_is_stalled_with_that_reason_and_an_edit_is_a_new_plan():
    planned = as_planned(FILES)
    inputs = p.Inputs(name="app", namespace="team", generation=1, target=None, migrations=planned, db=p.ObservedDatabase(0))
    first = p.plan(inputs)
    assert isinstance(first, p.StartJob)
    failed = p.JobState(first.job, "Failed", {"error": {"reason": "SourceChanged", "message": "the migration files "
                                                        "in /migrations changed since this run was planned"}})
    refused = p.plan(p.Inputs(**{**inputs.__dict__, "jobs": (failed,)}))
    assert isinstance(refused, p.Refuse) and refused.reason == "SourceChanged"
    assert "changed since this run was planned" in refused.message
    edited = as_planned({**FILES, "00002_t2.sql": FILES["00002_t2.sql"] + "-- edited\n"})
    again = p.plan(p.Inputs(**{**inputs.__dict__, "jobs": (failed,), "migrations": edited}))
    assert isinstance(again, p.StartJob) and again.job != first.job
