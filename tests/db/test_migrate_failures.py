"""Failures mid-run, NO TRANSACTION, ENVSUB, timeouts and checksums against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from migrate_support import mig, query, rows, sg, write_dir

pytestmark = pytest.mark.db


def test_failure_mid_run_rolls_back_only_the_failing_migration(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {
        "00001_a.sql": mig("CREATE TABLE a (id int);"),
        "00002_b.sql": mig("CREATE TABLE b (id int);\n\nINSERT INTO b\n  SELECT id FROM no_such_table;"),
        "00003_c.sql": mig("CREATE TABLE c (id int);"),
    })
    r = sg(database_url, d, "up")
    assert r.code == 1
    doc = r.json
    assert doc["ok"] is False and doc["versionBefore"] == 0 and doc["versionAfter"] == 1
    assert [a["version"] for a in doc["applied"]] == [1] and doc["pending"] == [2, 3]
    err = doc["error"]
    assert (err["reason"], err["file"], err["version"], err["statement"], err["line"], err["sqlstate"]) == (
        "MigrationFailed", "00002_b.sql", 2, 2, 4, "42P01")
    msg = err["message"]
    for part in ("00002_b.sql", "statement 2", "line 4: INSERT INTO b", 'relation "no_such_table" does not exist',
                 "SQLSTATE 42P01", "at line 5", "stopped after 1 of 3"):
        assert part in msg, msg
    assert rows(database_url) == [(0, True), (1, True)]
    assert query(database_url, "SELECT to_regclass('a') IS NOT NULL, to_regclass('b') IS NULL, "
                               "to_regclass('c') IS NULL") == [(True, True, True)]
    assert f"00002_b.sql: up statement 2" in r.err  # also said on stderr for humans


def test_no_transaction_runs_create_index_concurrently(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {
        "00001_t.sql": mig("CREATE TABLE t (id int);", "DROP TABLE t;"),
        "00002_idx.sql": mig("CREATE INDEX CONCURRENTLY t_id ON t (id);", "DROP INDEX CONCURRENTLY t_id;",
                             extra="-- +goose NO TRANSACTION\n"),
    })
    r = sg(database_url, d, "up")
    assert r.code == 0, r.text
    assert query(database_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass") == [(True,)]
    assert sg(database_url, d, "down").code == 0
    assert query(database_url, "SELECT to_regclass('t_id')") == [(None,)] and rows(database_url)[-1] == (1, True)


def test_concurrently_inside_a_transaction_fails_cleanly(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {"00001_t.sql": mig("CREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY t_id ON t (id);")})
    r = sg(database_url, d, "up")
    assert r.code == 1 and r.json["error"]["sqlstate"] == "25001" and r.json["error"]["statement"] == 2
    assert query(database_url, "SELECT to_regclass('t')") == [(None,)]


def test_no_transaction_failure_keeps_earlier_statements_and_writes_no_version(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {"00001_t.sql": mig("CREATE TABLE t (id int);\nSELECT 1/0;",
                                                      extra="-- +goose NO TRANSACTION\n")})
    r = sg(database_url, d, "up")
    assert r.code == 1 and r.json["error"]["sqlstate"] == "22012"
    assert "NO TRANSACTION" in r.json["error"]["message"]
    assert query(database_url, "SELECT to_regclass('t') IS NOT NULL") == [(True,)]
    assert rows(database_url) == [(0, True)]


def test_envsub(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = write_dir(tmp_path / "m", {"00001_t.sql": "-- +goose Up\n-- +goose ENVSUB ON\n"
                                   "CREATE TABLE ${TABLE_PREFIX}items (v text DEFAULT '${REGION:-eu}');\n"
                                   "-- +goose ENVSUB OFF\nCOMMENT ON TABLE ${TABLE_PREFIX}items IS '$NOT_ME';\n"})
    monkeypatch.setenv("TABLE_PREFIX", "shop_")
    monkeypatch.delenv("REGION", raising=False)
    assert sg(database_url, d, "up").code == 1  # ENVSUB OFF: ${TABLE_PREFIX} reaches PostgreSQL as is
    query(database_url, "DROP TABLE IF EXISTS shop_items")
    (d / "00001_t.sql").write_text("-- +goose Up\n-- +goose ENVSUB ON\n"
                                   "CREATE TABLE ${TABLE_PREFIX}items (v text DEFAULT '${REGION:-eu}');\n"
                                   "-- +goose ENVSUB OFF\nCOMMENT ON TABLE shop_items IS '$NOT_ME';\n")
    r = sg(database_url, d, "up")
    assert r.code == 0, r.text
    assert query(database_url, "SELECT column_default, obj_description('shop_items'::regclass) FROM "
                               "information_schema.columns WHERE table_name = 'shop_items'") == [("'eu'::text", "$NOT_ME")]


def test_statement_timeout_and_lock_timeout(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {"00001_t.sql": mig("CREATE TABLE t (id int);"),
                                   "00002_slow.sql": mig("SELECT pg_sleep(5);"),
                                   "00003_alter.sql": mig("ALTER TABLE t ADD COLUMN x int;")})
    assert sg(database_url, d, "up-by-one").code == 0
    slow = sg(database_url, d, "up", extra=("--statement-timeout", "200ms"))
    assert slow.code == 1 and slow.json["error"]["sqlstate"] == "57014" and slow.json["error"]["file"] == "00002_slow.sql"
    (d / "00002_slow.sql").write_text(mig("SELECT 2;"))
    with psycopg.connect(database_url) as holder:  # a long transaction holding a lock on t, like live traffic
        holder.execute("LOCK TABLE t IN ACCESS SHARE MODE")
        blocked = sg(database_url, d, "up", extra=("--lock-timeout", "200ms"))
        holder.rollback()
    assert blocked.code == 1
    assert (blocked.json["error"]["sqlstate"], blocked.json["error"]["file"]) == ("55P03", "00003_alter.sql")
    assert blocked.json["versionAfter"] == 2
    bad = sg(database_url, d, "up", extra=("--lock-timeout", "soon"))
    assert bad.code == 2 and bad.json["error"]["reason"] == "InvalidArguments"


def test_checksums_detect_edits_and_can_be_accepted(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {"00001_a.sql": mig("CREATE TABLE a (id int);"),
                                   "00002_b.sql": mig("CREATE TABLE b (id int);")})
    assert sg(database_url, d, "up").code == 0
    (d / "00001_a.sql").write_text(mig("CREATE TABLE a (id bigint);"))
    (d / "00003_c.sql").write_text(mig("CREATE TABLE c (id int);"))
    for cmd in ("up", "validate"):
        r = sg(database_url, d, cmd)
        assert r.code == 1, r.text
        err = r.json["error"]
        assert (err["reason"], err["file"], err["version"]) == ("ChecksumMismatch", "00001_a.sql", 1)
        assert "accept-checksum 1" in err["message"]
    assert query(database_url, "SELECT to_regclass('c')") == [(None,)]  # refused before applying anything
    assert query(database_url, "SELECT count(*) FROM goose_db_version") == [(3,)]  # goose's table untouched
    assert sg(database_url, d, "accept-checksum", "1").code == 0
    assert sg(database_url, d, "validate").code == 0
    assert sg(database_url, d, "up").json["versionAfter"] == 3
    not_applied = sg(database_url, d, "accept-checksum", "9")
    assert not_applied.code == 2 and not_applied.json["error"]["reason"] == "TargetNotFound"


def test_checksums_of_goose_applied_files_are_adopted(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {"00001_a.sql": mig("CREATE TABLE a (id int);", "DROP TABLE a;")})
    assert sg(database_url, d, "up").code == 0
    # Someone rolls back and re-applies an edited file without schemagate (goose, by hand): the old
    # checksum belongs to a row that no longer exists, so the new content is adopted, not refused.
    query(database_url, "DROP TABLE a; DELETE FROM goose_db_version WHERE version_id = 1")
    (d / "00001_a.sql").write_text(mig("CREATE TABLE a (id bigint);", "DROP TABLE a;"))
    query(database_url, "CREATE TABLE a (id bigint); INSERT INTO goose_db_version (version_id, is_applied) VALUES (1, true)")
    r = sg(database_url, d, "up")
    assert r.code == 0, r.text
    (d / "00001_a.sql").write_text(mig("CREATE TABLE a (id text);", "DROP TABLE a;"))
    assert sg(database_url, d, "validate").json["error"]["reason"] == "ChecksumMismatch"


def test_envsub_value_never_shown_in_a_failure(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ENVSUB is how goose users pass a role's password; the failing statement is quoted as written in the
    # file, never with the substituted secret.
    d = write_dir(tmp_path / "m", {"00001_role.sql": "-- +goose Up\n-- +goose ENVSUB ON\n"
                                   "ALTER ROLE no_such_role_here LOGIN PASSWORD '${APP_DB_PASSWORD}';\n"})
    monkeypatch.setenv("APP_DB_PASSWORD", "Sup3rS3cretPw")
    result_file = tmp_path / "result.json"
    r = sg(database_url, d, "up", extra=("--result-file", str(result_file)))
    assert r.code == 1 and r.json["error"]["reason"] == "MigrationFailed"
    assert "line 3: ALTER ROLE no_such_role_here LOGIN PASSWORD '${APP_DB_PASSWORD}'" in r.json["error"]["message"]
    for text in (r.out, r.err, result_file.read_text()):
        assert "Sup3rS3cretPw" not in text, text


def test_no_transaction_file_whose_version_cannot_be_recorded_says_it_stays_applied(database_url: str,
                                                                                      tmp_path: Path) -> None:
    # The statements of a NO TRANSACTION file have run when the version row is written; if that write fails
    # the result must name the file and say its statements stay applied (not a bare "database error").
    d = write_dir(tmp_path / "m", {"00001_t.sql": mig("CREATE TABLE kept (id int);\nDROP TABLE schemagate_checksums;",
                                                      extra="-- +goose NO TRANSACTION\n")})
    r = sg(database_url, d, "up")
    assert r.code == 1, r.text
    err = r.json["error"]
    assert (err["file"], err["version"], err["sqlstate"]) == ("00001_t.sql", 1, "42P01")
    assert "NO TRANSACTION" in err["message"] and "stay applied" in err["message"], err["message"]
    assert r.json["applied"] == [] and r.json["versionAfter"] == 0
    assert query(database_url, "SELECT to_regclass('kept') IS NOT NULL") == [(True,)]
    assert rows(database_url) == [(0, True)]


def test_transactional_file_whose_version_cannot_be_recorded_is_rolled_back_and_named(database_url: str,
                                                                                       tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {"00001_t.sql": mig("CREATE TABLE gone (id int);\nDROP TABLE schemagate_checksums;")})
    r = sg(database_url, d, "up")
    assert r.code == 1, r.text
    err = r.json["error"]
    assert (err["file"], err["version"]) == ("00001_t.sql", 1) and "rolled back" in err["message"], err["message"]
    assert query(database_url, "SELECT to_regclass('gone')") == [(None,)]
    assert rows(database_url) == [(0, True)]


def test_failure_at_commit_names_the_file(database_url: str, tmp_path: Path) -> None:
    # A deferred constraint is checked at COMMIT, after every statement succeeded: still the file's failure.
    d = write_dir(tmp_path / "m", {
        "00001_t.sql": mig("CREATE TABLE parent (id int PRIMARY KEY);\nCREATE TABLE child (p int REFERENCES parent "
                           "DEFERRABLE INITIALLY DEFERRED);"),
        "00002_bad.sql": mig("INSERT INTO child VALUES (42);"),
    })
    r = sg(database_url, d, "up")
    assert r.code == 1, r.text
    err = r.json["error"]
    assert (err["reason"], err["file"], err["version"], err["sqlstate"]) == ("MigrationFailed", "00002_bad.sql", 2,
                                                                             "23503"), err
    assert "COMMIT" in err["message"] and "rolled back" in err["message"], err["message"]
    assert r.json["versionAfter"] == 1 and rows(database_url) == [(0, True), (1, True)]
    assert query(database_url, "SELECT count(*) FROM child") == [(0,)]


@pytest.mark.parametrize(("body", "said"), [
    ("SELECT 1/0;\nCREATE TABLE t (id int);", "NO TRANSACTION: nothing of this file was applied"),
    ("CREATE TABLE t (id int);\nCREATE TABLE u (id int);\nSELECT 1/0;",
     "NO TRANSACTION: statements 1-2 of this file stay applied"),
])
def test_no_transaction_failure_says_exactly_what_stays_applied(database_url: str, tmp_path: Path, body: str,
                                                                said: str) -> None:
    d = write_dir(tmp_path / "m", {"00001_t.sql": mig(body, extra="-- +goose NO TRANSACTION\n")})
    r = sg(database_url, d, "up")
    assert r.code == 1 and said in r.json["error"]["message"], r.json["error"]["message"]
