"""File naming/versioning rules and the pure planner, as goose's up/down/redo decide."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from schemagate.api import reasons
from schemagate.migrate.errors import MigrateError
from schemagate.migrate.plan import DbState, VersionRow, pending, plan_down, plan_redo, plan_up
from schemagate.migrate.source import load_dir, load_files, version_of

OK = "-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 2;\n"


def files(*names: str) -> dict[str, str]:
    return {n: OK for n in names}


def test_versions_sort_numerically_and_other_files_are_ignored() -> None:
    ms = load_files(files("20240101120000_ts.sql", "00002_b.sql", "1_a.sql", "README.md", "helpers.go",
                          "notes.txt"))
    assert [(m.version, m.file) for m in ms] == [(1, "1_a.sql"), (2, "00002_b.sql"), (20240101120000, "20240101120000_ts.sql")]
    assert ms[0].sha256 == hashlib.sha256(OK.encode()).hexdigest()


@pytest.mark.parametrize(("name", "message"), [
    ("createusers.sql", "no filename separator '_' found"),
    ("abc_users.sql", 'failed to parse version from migration file: abc_users.sql: strconv.ParseInt: parsing "abc"'),
    ("0_zero.sql", "migration version must be greater than zero"),
    ("-3_neg.sql", "migration version must be greater than zero"),
    ("99999999999999999999_big.sql", "value out of range"),
])
def test_bad_names_name_the_file(name: str, message: str) -> None:
    with pytest.raises(MigrateError) as info:
        load_files(files("00001_ok.sql", name))
    assert info.value.reason == reasons.INVALID_MIGRATIONS
    assert info.value.file == name
    assert message in info.value.message and name in info.value.message


def test_duplicate_versions_name_both_files() -> None:
    with pytest.raises(MigrateError) as info:
        load_files(files("00001_a.sql", "1_b.sql"))
    assert "found duplicate migration version 1" in info.value.message
    assert "00001_a.sql" in info.value.message and "1_b.sql" in info.value.message


def test_go_migrations_are_refused_not_skipped() -> None:
    with pytest.raises(MigrateError, match="00002_x.go: Go migrations are not supported"):
        load_files(files("00001_a.sql", "00002_x.go"))


def test_every_bad_file_is_reported_before_anything_runs() -> None:
    fs = files("00001_a.sql")
    fs["00002_b.sql"] = "-- +goose Up\nSELECT 1\n"
    fs["00003_c.sql"] = "SELECT 1;\n"
    with pytest.raises(MigrateError) as info:
        load_files(fs)
    e = info.value
    assert (e.reason, e.file, e.line) == (reasons.INVALID_MIGRATIONS, "00002_b.sql", 2)
    assert "and 1 more problem" in e.message
    assert [d.split(":")[0] for d in e.details] == ["00002_b.sql", "00003_c.sql"]


def test_load_dir_errors_name_the_directory_or_file(tmp_path: Path) -> None:
    with pytest.raises(MigrateError, match=f"migrations directory {tmp_path / 'nope'} does not exist"):
        load_dir(tmp_path / "nope")
    (tmp_path / "00001_a.sql").write_bytes(b"-- +goose Up\nSELECT '\xff';\n")
    with pytest.raises(MigrateError, match="00001_a.sql is not UTF-8"):
        load_dir(tmp_path)


def test_a_dangling_migration_symlink_is_an_error_not_a_skip(tmp_path: Path) -> None:
    # goose globs *.sql and fails opening it; skipping it would silently leave version 2 out of the run.
    (tmp_path / "00001_a.sql").write_text("-- +goose Up\nSELECT 1;\n")
    (tmp_path / "00002_b.sql").symlink_to(tmp_path / "gone" / "00002_b.sql")
    with pytest.raises(MigrateError) as info:
        load_dir(tmp_path)
    assert (info.value.reason, info.value.file) == (reasons.INVALID_MIGRATIONS, "00002_b.sql")
    assert "00002_b.sql" in info.value.message and "not a regular file" in info.value.message



def state(*versions: int, unapplied: tuple[int, ...] = ()) -> DbState:
    """Rows in insertion order (version 0 first), as goose writes them."""
    rows = [VersionRow(i + 1, v, v not in unapplied) for i, v in enumerate((0, *versions))]
    return DbState(tuple(reversed(rows)))


MS = load_files(files("00001_a.sql", "00002_b.sql", "00003_c.sql", "00004_d.sql"))


def vs(steps) -> list[tuple[int, str]]:
    return [(s.migration.version, s.direction) for s in steps]


@pytest.mark.parametrize(("db", "kwargs", "expected"), [
    (DbState(), {}, [(1, "up"), (2, "up"), (3, "up"), (4, "up")]),
    (state(1, 2), {}, [(3, "up"), (4, "up")]),
    (state(1, 2, 3, 4), {}, []),
    (state(1, 2), {"by_one": True}, [(3, "up")]),
    (state(1), {"target": 3}, [(2, "up"), (3, "up")]),
    (state(1, 3), {"allow_missing": True}, [(2, "up"), (4, "up")]),
    (state(1, 3), {"allow_missing": True, "by_one": True}, [(2, "up")]),
    (state(3), {"allow_missing": True, "target": 2}, [(1, "up"), (2, "up")]),
])
def test_plan_up(db: DbState, kwargs: dict, expected: list) -> None:
    assert vs(plan_up(MS, db, **kwargs)) == expected


def test_missing_migrations_are_refused_naming_them() -> None:
    with pytest.raises(MigrateError) as info:
        plan_up(MS, state(1, 3))
    e = info.value
    assert (e.reason, e.file, e.version) == (reasons.MISSING_MIGRATIONS, "00002_b.sql", 2)
    assert "found 1 missing migration(s) before current version 3: version 2: 00002_b.sql" in e.message


@pytest.mark.parametrize(("call", "reason"), [
    (lambda: plan_up(MS, state(1, 2, 3, 4), by_one=True), reasons.NO_NEXT_VERSION),
    (lambda: plan_up(MS, state(), target=7), reasons.TARGET_NOT_FOUND),
    (lambda: plan_down(MS, state()), reasons.NO_CURRENT_VERSION),
    (lambda: plan_down(MS, state(1, 5)), reasons.NO_DOWN_MIGRATION),
    (lambda: plan_down(MS, state(1), target=9), reasons.TARGET_NOT_FOUND),
    (lambda: plan_redo(MS, state()), reasons.NO_CURRENT_VERSION),
])
def test_plan_refusals(call, reason: str) -> None:
    with pytest.raises(MigrateError) as info:
        call()
    assert info.value.reason == reason


@pytest.mark.parametrize(("db", "target", "expected"), [
    (state(1, 2, 3), None, [(3, "down")]),
    (state(1, 3, 2), None, [(2, "down")]),  # goose rolls back the last applied row, not the highest
    (state(1, 2, 3), 1, [(3, "down"), (2, "down")]),
    (state(1, 2, 3), 0, [(3, "down"), (2, "down"), (1, "down")]),
    (state(1, 2, 3), 3, []),
    (state(1, 2, 3, 2, unapplied=(3,)), None, [(2, "down")]),
])
def test_plan_down(db: DbState, target: int | None, expected: list) -> None:
    assert vs(plan_down(MS, db, target=target)) == expected


def test_redo_and_pending() -> None:
    assert vs(plan_redo(MS, state(1, 2))) == [(2, "down"), (2, "up")]
    assert pending(MS, state(1, 3)) == [2, 4]
    assert state(1, 2, 3, unapplied=(3,)).current_version == 2


def test_version_of_accepts_goose_forms() -> None:
    assert version_of("00010_x.sql") == 10
    assert version_of("20240101120000_x_y.sql") == 20240101120000
