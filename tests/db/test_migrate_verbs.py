"""Every `schemagate migrate` verb against a real PostgreSQL, checked through the tracking table."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import psycopg
import pytest

from migrate_support import mig, numbered, query, rows, sg, write_dir
from schemagate import cli

pytestmark = pytest.mark.db


@pytest.fixture
def four(tmp_path: Path) -> Path:
    return write_dir(tmp_path / "m", numbered(4))


def test_up_creates_goose_table_and_applies_everything(database_url: str, four: Path) -> None:
    r = sg(database_url, four, "up")
    assert r.code == 0, r.text
    doc = r.json
    assert (doc["ok"], doc["versionBefore"], doc["versionAfter"], doc["pending"], doc["error"]) == (True, 0, 4, [], None)
    assert [(a["version"], a["direction"]) for a in doc["applied"]] == [(1, "up"), (2, "up"), (3, "up"), (4, "up")]
    assert rows(database_url) == [(0, True), (1, True), (2, True), (3, True), (4, True)]
    cols = query(database_url, "SELECT column_name, data_type, is_nullable, is_identity FROM information_schema.columns "
                               "WHERE table_name = 'goose_db_version' ORDER BY ordinal_position")
    assert cols == [("id", "integer", "NO", "YES"), ("version_id", "bigint", "NO", "NO"),
                    ("is_applied", "boolean", "NO", "NO"), ("tstamp", "timestamp without time zone", "NO", "NO")]
    again = sg(database_url, four, "up")
    assert again.code == 0 and again.json["applied"] == [] and rows(database_url)[-1] == (4, True)


def test_up_by_one_up_to_down_down_to_redo(database_url: str, four: Path) -> None:
    assert sg(database_url, four, "up-by-one").json["versionAfter"] == 1
    assert sg(database_url, four, "up-to", "3").json["versionAfter"] == 3
    assert sg(database_url, four, "down").json["versionAfter"] == 2
    assert query(database_url, "SELECT to_regclass('t3')") == [(None,)]
    redo = sg(database_url, four, "redo").json
    assert [(a["version"], a["direction"]) for a in redo["applied"]] == [(2, "down"), (2, "up")]
    assert sg(database_url, four, "down-to", "0").json["versionAfter"] == 0
    assert rows(database_url) == [(0, True)]
    assert query(database_url, "SELECT to_regclass('applied_log')") == [(None,)]
    last = sg(database_url, four, "up-by-one")
    assert last.code == 0
    assert sg(database_url, four, "up").json["versionAfter"] == 4
    done = sg(database_url, four, "up-by-one")
    assert done.code == 1 and done.json["error"]["reason"] == "NoNextVersion"


def test_status_and_version(database_url: str, four: Path) -> None:
    fresh = sg(database_url, four, "status").json
    assert fresh["versionAfter"] == 0 and [m["applied"] for m in fresh["migrations"]] == [False] * 4
    assert query(database_url, "SELECT to_regclass('goose_db_version')") == [(None,)]  # status does not write
    sg(database_url, four, "up-to", "2")
    st = sg(database_url, four, "status").json
    assert [(m["version"], m["file"], m["applied"]) for m in st["migrations"]] == [
        (1, "00001_log.sql", True), (2, "00002_t2.sql", True), (3, "00003_t3.sql", False), (4, "00004_t4.sql", False)]
    assert st["migrations"][0]["appliedAt"] and st["migrations"][2]["appliedAt"] is None
    assert st["pending"] == [3, 4]
    assert sg(database_url, four, "version").json["versionAfter"] == 2


def test_status_uses_one_query_whatever_the_number_of_migrations(database_url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    counts = []
    for n in (3, 40):
        d = write_dir(tmp_path / f"m{n}", numbered(n))
        seen: list[str] = []
        real = psycopg.Connection.execute

        def counting(self, query, *a, **kw):  # type: ignore[no-untyped-def]
            seen.append(str(query))
            return real(self, query, *a, **kw)

        monkeypatch.setattr(psycopg.Connection, "execute", counting)
        assert sg(database_url, d, "status").code == 0
        monkeypatch.undo()
        counts.append(len(seen))
    assert counts[0] == counts[1] == 1


def test_text_output_for_humans(database_url: str, four: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["migrate", "--dir", str(four), "--database-url", database_url, "up"])
    assert code == 0
    assert "successfully migrated database to version: 4" in out.getvalue()
    assert "OK   00004_t4.sql" in err.getvalue()


def test_missing_migrations_refused_then_allowed(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {"00001_a.sql": mig("SELECT 1;"), "00003_c.sql": mig("SELECT 3;")})
    assert sg(database_url, d, "up").code == 0
    (d / "00002_b.sql").write_text(mig("CREATE TABLE b (id int);"))
    refused = sg(database_url, d, "up")
    assert refused.code == 1
    err = refused.json["error"]
    assert (err["reason"], err["file"], err["version"]) == ("MissingMigrations", "00002_b.sql", 2)
    bad = sg(database_url, d, "validate")
    assert bad.code == 1 and bad.json["error"]["reason"] == "MissingMigrations"
    ok = sg(database_url, d, "up", extra=("--allow-missing",))
    assert ok.code == 0 and [a["version"] for a in ok.json["applied"]] == [2]
    assert rows(database_url) == [(0, True), (1, True), (3, True), (2, True)]
    assert sg(database_url, d, "version").json["versionAfter"] == 2  # goose: last applied row wins


def test_targets_must_exist(database_url: str, four: Path) -> None:
    r = sg(database_url, four, "up-to", "7")
    assert r.code == 2 and r.json["error"]["reason"] == "TargetNotFound"
    assert rows(database_url) == [(0, True)]  # nothing applied


def test_custom_table_and_older_serial_goose_table(database_url: str, four: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA ops")
        # goose before v3.22 created this shape; it must be used as is, never altered
        conn.execute("CREATE TABLE ops.versions (id serial NOT NULL, version_id bigint NOT NULL, "
                     "is_applied boolean NOT NULL, tstamp timestamp NULL default now(), PRIMARY KEY(id))")
        conn.execute("INSERT INTO ops.versions (version_id, is_applied) VALUES (0, true)")
    r = sg(database_url, four, "up", extra=("--table", "ops.versions"))
    assert r.code == 0, r.text
    assert r.json["database"]["table"] == "ops.versions"
    assert rows(database_url, "ops.versions") == [(0, True), (1, True), (2, True), (3, True), (4, True)]
    assert query(database_url, "SELECT column_default FROM information_schema.columns WHERE table_schema='ops' "
                               "AND table_name='versions' AND column_name='id'")[0][0].startswith("nextval")
    assert query(database_url, "SELECT to_regclass('public.goose_db_version')") == [(None,)]


def test_result_file_is_compact_and_bounded(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", numbered(120))
    out = tmp_path / "termination-log"
    r = sg(database_url, d, "up", extra=("--result-file", str(out)))
    assert r.code == 0
    raw = out.read_bytes()
    assert len(raw) <= 4096 and b"\n" not in raw
    doc = json.loads(raw)
    assert doc["ok"] and doc["versionAfter"] == 120 and doc["applied"][-1]["version"] == 120
    assert doc["appliedOmitted"] + len(doc["applied"]) == 120


def test_statements_reach_postgres_verbatim(database_url: str, tmp_path: Path) -> None:
    """No parameter parsing (`%` stays), and a StatementBegin block may hold several commands, as with goose."""
    d = write_dir(tmp_path / "m", {"00001_a.sql": "-- +goose Up\n-- +goose StatementBegin\n"
                                   "CREATE TABLE pct (v text);\nINSERT INTO pct VALUES ('100%'), ('%s'), ('%(x)s');\n"
                                   "-- +goose StatementEnd\nDELETE FROM pct WHERE v LIKE '1%';\n"})
    assert sg(database_url, d, "up").code == 0
    assert query(database_url, "SELECT v FROM pct ORDER BY v") == [("%(x)s",), ("%s",)]
