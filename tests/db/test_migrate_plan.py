"""`schemagate migrate plan`: the statements up/up-to/down-to would run, in order, marked; nothing changes."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import psycopg
import pytest

from migrate_support import sg, write_dir
from schemagate import cli
from schemagate.migrate import store

pytestmark = pytest.mark.db

FILES = {
    "00001_accounts.sql": "-- +goose Up\nCREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY);\n"
                          "CREATE TABLE IF NOT EXISTS plans (id bigint PRIMARY KEY);\n"
                          "-- +goose Down\nDROP TABLE IF EXISTS plans;\nDROP TABLE IF EXISTS accounts;\n",
    "00002_index.sql": "-- +goose NO TRANSACTION\n-- +goose Up\n"
                       "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_accounts ON accounts (id);\n"
                       "-- +goose Down\nDROP INDEX CONCURRENTLY IF EXISTS idx_accounts;\n",
    "00003_touch.sql": "-- +goose Up\n-- +goose StatementBegin\nCREATE OR REPLACE FUNCTION touch() RETURNS int\n"
                       "LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;\n-- +goose StatementEnd\n"
                       "-- +goose Down\nDROP FUNCTION IF EXISTS touch();\n",
}


def snapshot(url: str) -> tuple[list[str], list[tuple[object, ...]]]:
    """Every table of the database, and the tracking table's rows when it exists."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = sorted(r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"))
        rows = conn.execute("SELECT id, version_id, is_applied FROM goose_db_version ORDER BY id").fetchall() \
            if "goose_db_version" in tables else []
    return tables, rows


def test_plan_on_an_empty_database_creates_nothing_and_takes_no_lock(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", FILES)
    with psycopg.connect(database_url, autocommit=True) as holder:  # another run holds the migration lock
        assert holder.execute("SELECT pg_try_advisory_lock(%s)", (store.ADVISORY_LOCK_KEY,)).fetchone() == (True,)
        run = sg(database_url, d, "plan", extra=("--lock-wait", "0"))
        assert run.code == 0, run.text
    assert snapshot(database_url) == ([], [])  # no goose table, no checksum table, nothing applied
    doc = run.json
    assert (doc["command"], doc["verb"], doc["versionBefore"], doc["versionAfter"]) == ("plan", "up", 0, 3)
    assert [(s["version"], s["direction"], s["noTransaction"]) for s in doc["steps"]] == [
        (1, "up", False), (2, "up", True), (3, "up", False)]
    assert [[st["line"] for st in s["statements"]] for s in doc["steps"]] == [[2, 3], [3], [3]]
    assert doc["steps"][2]["statements"][0]["sql"].startswith("CREATE OR REPLACE FUNCTION touch()")


def test_plan_text_marks_each_file_and_statement_in_order(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", FILES)
    assert sg(database_url, d, "up-to", "1").code == 0
    before = snapshot(database_url)
    assert [s["version"] for s in sg(database_url, d, "plan", "up-to", "2").json["steps"]] == [2]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["migrate", "--dir", str(d), "--database-url", database_url, "plan"])
    text = out.getvalue()
    assert code == 0
    lines = [ln for ln in text.splitlines() if ln.startswith("-- ====") or ln.startswith("-- 0000")]
    assert lines[0].startswith("-- ==== version 2 UP: 00002_index.sql") and "NO TRANSACTION" in lines[0]
    assert lines[1] == "-- 00002_index.sql:3"
    assert lines[2].startswith("-- ==== version 3 UP: 00003_touch.sql") and "in one transaction" in lines[2]
    assert text.index("CREATE INDEX CONCURRENTLY") < text.index("CREATE OR REPLACE FUNCTION")
    assert "version 1 → 3, 2 migration(s), 2 statement(s); dry run, nothing was changed" in text.splitlines()[0]
    assert snapshot(database_url) == before


def test_plan_down_to_lists_the_down_sections_newest_first(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", FILES)
    assert sg(database_url, d, "up").code == 0
    before = snapshot(database_url)
    doc = sg(database_url, d, "plan", "down-to", "0").json
    assert [(s["version"], s["direction"]) for s in doc["steps"]] == [(3, "down"), (2, "down"), (1, "down")]
    assert [st["sql"] for st in doc["steps"][2]["statements"]] == ["DROP TABLE IF EXISTS plans;",
                                                                   "DROP TABLE IF EXISTS accounts;"]
    assert (doc["versionBefore"], doc["versionAfter"]) == (3, 0)
    assert snapshot(database_url) == before
    # The printed digest is what --expect-digest pins the real run to.
    assert sg(database_url, d, "down-to", "0", extra=("--expect-digest", doc["filesDigest"],
                                                      "--expect-rollback", "3,2,1")).code == 0


def test_plan_digest_is_the_one_the_run_accepts(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", FILES)
    digest = sg(database_url, d, "plan", "up-to", "2").json["filesDigest"]
    assert sg(database_url, d, "up-to", "2", extra=("--expect-digest", digest)).code == 0
    assert snapshot(database_url)[1][1:] == [(2, 1, True), (3, 2, True)]


def test_plan_says_what_the_run_would_refuse(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", FILES)
    assert sg(database_url, d, "up-to", "1").code == 0
    (d / "00001_accounts.sql").write_text(FILES["00001_accounts.sql"] + "-- edited\n")
    run = sg(database_url, d, "plan")
    assert run.code == 1 and run.json["error"]["reason"] == "ChecksumMismatch"
    (d / "00001_accounts.sql").write_text(FILES["00001_accounts.sql"])
    assert sg(database_url, d, "plan", "up-to", "7").json["error"]["reason"] == "TargetNotFound"
    assert sg(database_url, d, "plan", "sideways").code == 2
