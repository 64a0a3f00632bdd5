"""The real goose binary is the judge: both tools on one database, in either order, agree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from migrate_support import goose, mig, numbered, rows, sg, write_dir
from devenv.postgres import find_bindir

pytestmark = [pytest.mark.db, pytest.mark.goose]

REPO = Path(__file__).resolve().parents[2]


def goose_status(goose_bin: str, url: str, d: Path) -> dict[str, bool]:
    """file → applied, parsed from `goose status` ("<ANSIC time> -- file" or "Pending -- file")."""
    r = goose(goose_bin, url, d, "status")
    assert r.code == 0, r.text
    found = re.findall(r"^\S+ \S+\s+(\S.*?)\s+-- (\S+\.sql)$", r.text, re.M)
    return {file: when != "Pending" for when, file in found}


def goose_version(goose_bin: str, url: str, d: Path) -> int:
    r = goose(goose_bin, url, d, "version")
    assert r.code == 0, r.text
    return int(re.search(r"goose: version (\d+)", r.text).group(1))  # type: ignore[union-attr]


def test_schemagate_up_then_goose_agrees(goose_bin: str, database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", numbered(4))
    assert sg(database_url, d, "up-to", "3").code == 0
    assert goose_status(goose_bin, database_url, d) == {
        "00001_log.sql": True, "00002_t2.sql": True, "00003_t3.sql": True, "00004_t4.sql": False}
    assert goose_version(goose_bin, database_url, d) == 3
    assert goose(goose_bin, database_url, d, "up").code == 0  # goose continues where we stopped
    assert rows(database_url) == [(v, True) for v in range(5)]


def test_goose_up_then_schemagate_agrees(goose_bin: str, database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", numbered(4))
    assert goose(goose_bin, database_url, d, "up-to", "2").code == 0
    st = sg(database_url, d, "status").json
    assert [(m["file"], m["applied"]) for m in st["migrations"]] == [
        ("00001_log.sql", True), ("00002_t2.sql", True), ("00003_t3.sql", False), ("00004_t4.sql", False)]
    assert st["versionAfter"] == 2 == sg(database_url, d, "version").json["versionAfter"]
    assert sg(database_url, d, "validate").code == 0
    up = sg(database_url, d, "up")
    assert up.code == 0 and [a["version"] for a in up.json["applied"]] == [3, 4]


RICH = {
    "00001_tables.sql": mig("CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n"
                            "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id));",
                            "DROP TABLE posts;\nDROP TABLE users;"),
    "00002_func.sql": "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION touch() RETURNS trigger AS $$\n"
                      "BEGIN\n  NEW.email := lower(NEW.email);\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n"
                      "-- +goose StatementEnd\nCREATE TRIGGER users_touch BEFORE INSERT ON users FOR EACH ROW "
                      "EXECUTE FUNCTION touch();\n\n-- +goose Down\nDROP TRIGGER users_touch ON users;\n"
                      "DROP FUNCTION touch();\n",
    "00003_index.sql": mig("CREATE INDEX CONCURRENTLY posts_user ON posts (user_id);",
                           "DROP INDEX CONCURRENTLY posts_user;", extra="-- +goose NO TRANSACTION\n"),
    "00004_upOnly.sql": mig("ALTER TABLE users ADD COLUMN IF NOT EXISTS created timestamptz DEFAULT now();"),
    "20240101120000_ts.sql": mig("CREATE VIEW emails AS SELECT email FROM users;", "DROP VIEW emails;"),
}

SEQUENCE = [("up-to", "2"), ("up-by-one",), ("up",), ("down",), ("redo",), ("down-to", "1"), ("up-by-one",),
            ("redo",), ("down-to", "0"), ("up",), ("down",), ("down",)]


def schema_dump(url: str) -> str:
    out = subprocess.run([str(find_bindir() / "pg_dump"), "--schema-only", "--no-owner",
                          "--exclude-table=schemagate_checksums", url],
                         capture_output=True, text=True, check=True).stdout
    # comments carry nothing; \restrict carries a random key per run (pg_dump ≥ 15.14)
    return "\n".join(ln for ln in out.splitlines() if not ln.startswith(("--", "\\restrict", "\\unrestrict")))


def test_mixed_up_down_by_both_tools_equals_goose_alone(goose_bin: str, postgres_server, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", RICH)
    mixed = postgres_server.create_database("interop_mixed")
    alone = postgres_server.create_database("interop_goose")
    for i, cmd in enumerate(SEQUENCE):
        if i % 2 == 0:
            r = sg(mixed, d, *cmd)
        else:
            r = goose(goose_bin, mixed, d, *cmd)
        assert r.code == 0, (cmd, r.text)
        g = goose(goose_bin, alone, d, *cmd)
        assert g.code == 0, (cmd, g.text)
        assert rows(mixed) == rows(alone), cmd
        assert schema_dump(mixed) == schema_dump(alone), cmd


# goose applies a file's Up section without reading its Down section; we refuse both before starting.
INVALID_FOR_GOOSE_UP = {
    "missing-semicolon": ("-- +goose Up\nSELECT 1\n", "unexpected unfinished SQL query"),
    "sql-before-up": ("SELECT 1;\n-- +goose Up\n", "unexpected state 0 on line"),
    "duplicate-up": ("-- +goose Up\nSELECT 1;\n-- +goose Up\n", "duplicate '-- +goose Up' annotations"),
    "missing-end": ("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n", "missing '-- +goose StatementEnd'"),
    "end-without-begin": ("-- +goose Up\n-- +goose StatementEnd\n", "must be defined after '-- +goose StatementBegin'"),
    "unknown-annotation": ("-- +goose Upp\n", "not supported: invalid annotation"),
    "leading-whitespace": ("  -- +goose Up\nSELECT 1;\n", "contains leading whitespace"),
    "empty": ("", "must start with '-- +goose Up' annotation"),
    "envsub-unset": ("-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${SG_UNSET_VAR?needed}';\n", "$SG_UNSET_VAR: needed"),
}


def test_goose_rejects_what_we_reject_with_the_same_words(goose_bin: str, database_url: str, tmp_path: Path) -> None:
    for case, (text, words) in INVALID_FOR_GOOSE_UP.items():
        d = write_dir(tmp_path / case, {"00001_bad.sql": text})
        ours = sg(database_url, d, "up")
        theirs = goose(goose_bin, database_url, d, "up")
        assert ours.code == 2 and words in ours.json["error"]["message"], (case, ours.text)
        assert theirs.code != 0 and words in theirs.text, (case, theirs.text)
    assert rows(database_url) == [(0, True)]


def test_down_section_errors_found_before_anything_runs(goose_bin: str, database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {"00001_a.sql": "-- +goose Up\nCREATE TABLE a (id int);\n-- +goose Down\nDROP TABLE a\n"})
    ours = sg(database_url, d, "up")
    assert ours.code == 2 and "direction: down" in ours.json["error"]["message"]
    assert goose(goose_bin, database_url, d, "up").code == 0  # goose only notices when rolling back ...
    down = goose(goose_bin, database_url, d, "down")
    assert down.code != 0 and "direction: down: unexpected unfinished SQL query" in down.text  # ... too late


def test_project_migrations_with_both_tools(goose_bin: str, postgres_server, tmp_path: Path) -> None:
    d = REPO / "migrations"
    if not list(d.glob("*.sql")):
        pytest.fail(f"no migrations in {d}: migrations/00001_initial_schema.sql is expected")
    ours_first = postgres_server.create_database("project_ours_first")
    assert sg(ours_first, d, "up").code == 0
    assert all(goose_status(goose_bin, ours_first, d).values())
    goose_first = postgres_server.create_database("project_goose_first")
    assert goose(goose_bin, goose_first, d, "up").code == 0
    st = sg(goose_first, d, "status").json
    assert st["pending"] == [] and all(m["applied"] for m in st["migrations"])
    assert schema_dump(ours_first) == schema_dump(goose_first)
    assert sg(goose_first, d, "down-to", "0").code == 0 and goose(goose_bin, goose_first, d, "up").code == 0
