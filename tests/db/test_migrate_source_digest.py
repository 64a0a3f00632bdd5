"""`schemagate migrate --expect-digest`: files other than the planned ones are refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from migrate_support import rows, sg, write_dir
from schemagate.migrate.source import load_dir, run_digest

V = "-- +goose Up\nCREATE TABLE t{n} (id int);\n-- +goose Down\nDROP TABLE t{n};\n"


def _digest(directory: Path, target: int | None, rollback: tuple[int, ...] = ()) -> str:
    loaded = load_dir(directory)
    return run_digest([(m.version, m.file, m.sha256) for m in loaded], target, rollback)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_an_edit_after_the_plan_is_refused_and_nothing_is_applied(database_url: str, tmp_path: Path):
    d = write_dir(tmp_path / "m", {"00001_t1.sql": V.format(n=1), "00002_t2.sql": V.format(n=2)})
    planned = _digest(d, 2)
    (d / "00002_t2.sql").write_text(V.format(n=2).replace("(id int)", "(id int, secret text)"))
    result_file = tmp_path / "termination-log"
    run = sg(database_url, d, "up-to", "2", extra=("--expect-digest", planned, "--result-file", str(result_file)))
    assert run.code == 1, run.text
    error = run.json["error"]
    assert error["reason"] == "SourceChanged"
    assert "changed since this run was planned" in error["message"] and "nothing was applied" in error["message"]
    assert json.loads(result_file.read_text())["error"]["reason"] == "SourceChanged"
    assert _tables(database_url) == set()  # not even goose's tracking table


def test_a_file_added_under_the_target_is_refused(database_url: str, tmp_path: Path):
    d = write_dir(tmp_path / "m", {"00001_t1.sql": V.format(n=1), "00003_t3.sql": V.format(n=3)})
    planned = _digest(d, 3)
    (d / "00002_sneaked_in.sql").write_text(V.format(n=2))
    run = sg(database_url, d, "up-to", "3", extra=("--expect-digest", planned))
    assert run.code == 1 and run.json["error"]["reason"] == "SourceChanged"
    assert _tables(database_url) == set()


def test_the_planned_files_apply(database_url: str, tmp_path: Path):
    d = write_dir(tmp_path / "m", {"00001_t1.sql": V.format(n=1), "00002_t2.sql": V.format(n=2)})
    planned = _digest(d, 2)
    (d / "00003_later.sql").write_text(V.format(n=3))  # past the target: not part of this run
    run = sg(database_url, d, "up-to", "2", extra=("--expect-digest", planned))
    assert run.code == 0, run.text
    assert rows(database_url)[1:] == [(1, True), (2, True)]
    assert _tables(database_url) == {"goose_db_version", "schemagate_checksums", "t1", "t2"}


def test_a_rollback_checks_the_files_it_rolls_back(database_url: str, tmp_path: Path):
    d = write_dir(tmp_path / "m", {f"0000{n}_t{n}.sql": V.format(n=n) for n in (1, 2, 3)})
    assert sg(database_url, d, "up").code == 0
    planned = _digest(d, 1, (3, 2))
    (d / "00003_t3.sql").write_text(V.format(n=3).replace("DROP TABLE t3;", "DROP TABLE t1; DROP TABLE t3;"))
    extra = ("--expect-digest", planned, "--expect-rollback", "3,2")
    refused = sg(database_url, d, "down-to", "1", extra=extra)
    assert refused.code == 1 and refused.json["error"]["reason"] == "SourceChanged"
    assert _tables(database_url) == {"goose_db_version", "schemagate_checksums", "t1", "t2", "t3"}
    (d / "00003_t3.sql").write_text(V.format(n=3))
    run = sg(database_url, d, "down-to", "1", extra=extra)
    assert run.code == 0, run.text
    assert _tables(database_url) == {"goose_db_version", "schemagate_checksums", "t1"}


def test_bad_digest_arguments_are_usage_errors(database_url: str, tmp_path: Path):
    d = write_dir(tmp_path / "m", {"00001_t1.sql": V.format(n=1)})
    not_hex = sg(database_url, d, "up", extra=("--expect-digest", "abc"))
    assert not_hex.code == 2 and "64 hex digits" in not_hex.json["error"]["message"]
    wrong_verb = sg(database_url, d, "redo", extra=("--expect-digest", "ab" * 32))
    assert wrong_verb.code == 2 and wrong_verb.json["error"]["reason"] == "InvalidArguments"
    orphan = sg(database_url, d, "up", extra=("--expect-rollback", "2"))
    assert orphan.code == 2 and "--expect-digest" in orphan.json["error"]["message"]
