"""`schemagate verify`: the application's start-up check, with advice that says exactly what to run."""

from __future__ import annotations

import urllib.parse
import uuid

from pathlib import Path

import pytest

from migrate_support import sg
from schemagate import cli

pytestmark = pytest.mark.db

REPO = Path(__file__).resolve().parents[2]


def verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["verify", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_verify_empty_database_says_what_to_run(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = verify(capsys, "--database-url", database_url, "--min-version", "1")
    assert code == 1
    assert "schema version is 0, need at least 1" in err
    assert "missing tables: namespaces, groups, targets, target_groups, exporters, alert_templates, alert_rules, " \
           "check_templates, check_instances, bootstrap_tokens" in err
    assert "Run migrations first: schemagate migrate up --dir migrations" in err and "goose -dir migrations" in err
    assert urllib.parse.urlsplit(database_url).password not in err


def test_verify_after_migrating_the_project(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert sg(database_url, REPO / "migrations", "up").code == 0
    capsys.readouterr()
    code, out, _ = verify(capsys, "--database-url", database_url, "--min-version", "1")
    assert code == 0 and "all 10 required tables" in out
    code, _, err = verify(capsys, "--database-url", database_url, "--min-version", "99999999999999",
                          "--require-tables", "namespaces,not_there")
    assert code == 1 and "need at least 99999999999999" in err and "missing tables: not_there" in err


def test_verify_with_only_dir_passes_on_a_migrated_database(database_url: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert sg(database_url, REPO / "migrations", "up").code == 0
    capsys.readouterr()
    code, out, err = verify(capsys, "--database-url", database_url, "--dir", str(REPO / "migrations"))
    assert code == 0, err
    assert "at version 1 (need 1) with all 10 required tables" in out


def test_verify_with_only_dir_fails_on_an_empty_database_saying_what_to_run(
        database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(REPO / "migrations")
    code, _, err = verify(capsys, "--database-url", database_url, "--dir", d)
    assert code == 1
    assert "schema version is 0, need at least 1" in err  # the newest file in --dir
    assert "missing tables: namespaces, groups, targets, target_groups, exporters, alert_templates, alert_rules, " \
           "check_templates, check_instances, bootstrap_tokens" in err  # what its Up section creates
    assert f"Run migrations first: schemagate migrate up --dir {d} --table goose_db_version" in err


def test_verify_requirements_follow_the_files(database_url: str, capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    (tmp_path / "00001_a.sql").write_text("-- +goose Up\nCREATE TABLE IF NOT EXISTS a (id bigint);\n"
                                          "CREATE TABLE IF NOT EXISTS old (id bigint);\n"
                                          "-- +goose Down\nDROP TABLE IF EXISTS old;\nDROP TABLE IF EXISTS a;\n")
    (tmp_path / "00002_b.sql").write_text("-- +goose Up\nCREATE TABLE IF NOT EXISTS b (id bigint);\n"
                                          "DROP TABLE IF EXISTS old;\n"
                                          "-- +goose Down\nDROP TABLE IF EXISTS b;\n")
    assert sg(database_url, tmp_path, "up-to", "1").code == 0
    capsys.readouterr()
    code, _, err = verify(capsys, "--database-url", database_url, "--dir", str(tmp_path))
    assert code == 1 and "schema version is 1, need at least 2; missing tables: b" in err
    code, out, _ = verify(capsys, "--database-url", database_url, "--dir", str(tmp_path), "--min-version", "1")
    assert code == 0 and "all 2 required tables" in out  # a and old, as version 1 left them
    assert sg(database_url, tmp_path, "up").code == 0
    capsys.readouterr()
    code, out, _ = verify(capsys, "--database-url", database_url, "--dir", str(tmp_path))
    assert code == 0 and "all 2 required tables" in out  # a and b: 00002 dropped old


def test_verify_without_files_says_what_it_needs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = verify(capsys, "--database-url", "postgresql://u@127.0.0.1:1/x", "--dir", str(tmp_path / "no"))
    assert code == 2 and "does not exist" in err and "--min-version and --require-tables" in err


def test_verify_unreachable_database(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = verify(capsys, "--database-url", "postgresql://u:VerySecret9@127.0.0.1:1/x", "--min-version", "1")
    assert code == 1 and "ConnectionFailed" in err and "VerySecret9" not in err


def test_migrate_and_verify_on_a_sql_ascii_database(postgres_server, capsys: pytest.CaptureFixture[str]) -> None:
    """Old databases made with SQL_ASCII (no encoding at all): libpq then hands text over as bytes unless the
    client says UTF8, and every name read back (tables, versions' checksums) would be compared as bytes."""
    import psycopg

    name = f"ascii_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" ENCODING \'SQL_ASCII\' TEMPLATE template0 LC_COLLATE \'C\' '
                     f'LC_CTYPE \'C\'')
    url = postgres_server.url(name)
    assert sg(url, REPO / "migrations", "up").code == 0
    assert sg(url, REPO / "migrations", "status").code == 0
    capsys.readouterr()
    code, out, err = verify(capsys, "--database-url", url, "--dir", str(REPO / "migrations"))
    assert code == 0, err
    assert "with all 10 required tables" in out
