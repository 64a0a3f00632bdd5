"""ENVSUB from declared names only, as the migration Job runs it, against a real PostgreSQL.

The Job's pod has SCHEMAGATE_ENVSUB_NAMES (what spec.job.env/envFrom declared), each value under
SCHEMAGATE_ENV_<name>, and SCHEMAGATE_ENVSUB_REDACT for the names whose values come from Secrets.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate_support import query, sg, write_dir

pytestmark = pytest.mark.db

ROLE_FILE = ("-- +goose Up\n-- +goose ENVSUB ON\nCREATE TABLE ${TABLE_PREFIX}items (id int);\n"
             "SELECT '${APP_PW}'::int;\n-- +goose Down\nSELECT 1;\n")


def _job_environment(monkeypatch: pytest.MonkeyPatch, names: str) -> None:
    monkeypatch.setenv("SCHEMAGATE_ENVSUB_NAMES", names)
    monkeypatch.setenv("SCHEMAGATE_ENVSUB_REDACT", "APP_PW")
    monkeypatch.setenv("SCHEMAGATE_ENV_TABLE_PREFIX", "shop_")
    monkeypatch.setenv("SCHEMAGATE_ENV_APP_PW", "Hunter2-pw")
    monkeypatch.setenv("TABLE_PREFIX", "evil_")  # in the process environment, never read: not how the Job passes it


def test_declared_values_are_substituted_and_a_secret_one_is_masked_in_the_failure(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = write_dir(tmp_path / "m", {"00001_role.sql": ROLE_FILE})
    _job_environment(monkeypatch, "TABLE_PREFIX,APP_PW")
    r = sg(database_url, d, "up")
    assert r.code == 1, r.text
    err = r.json["error"]
    assert (err["reason"], err["file"], err["sqlstate"]) == ("MigrationFailed", "00001_role.sql", "22P02")
    # PostgreSQL quotes the value it could not cast; the runner masks values that came from Secrets.
    assert "Hunter2-pw" not in r.text and "Hunter2-pw" not in json.dumps(r.json), r.text
    assert 'invalid input syntax for type integer: "xxxxx"' in err["message"]
    assert query(database_url, "SELECT to_regclass('shop_items'), to_regclass('evil_items')") == [(None, None)]
    (d / "00001_role.sql").write_text(ROLE_FILE.replace("SELECT '${APP_PW}'::int;", "SELECT '${APP_PW}';"))
    ok = sg(database_url, d, "up")
    assert ok.code == 0, ok.text
    assert query(database_url, "SELECT to_regclass('shop_items') IS NOT NULL") == [(True,)]


def test_an_undeclared_variable_applies_nothing(database_url: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    d = write_dir(tmp_path / "m", {"00001_role.sql": ROLE_FILE})
    _job_environment(monkeypatch, "APP_PW")  # TABLE_PREFIX has a value, and is set as itself, but is not declared
    r = sg(database_url, d, "up")
    assert r.code == 2, r.text
    err = r.json["error"]
    assert (err["reason"], err["file"], err["line"]) == ("InvalidMigrations", "00001_role.sql", 3)
    assert "$TABLE_PREFIX is not declared: declare it in the SchemaMigration's spec.job.env" in err["message"]
    assert query(database_url, "SELECT to_regclass('goose_db_version')") == [(None,)]  # nothing touched


def test_the_cli_declares_with_envsub_allow(database_url: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    d = write_dir(tmp_path / "m", {"00001_t.sql": "-- +goose Up\n-- +goose ENVSUB ON\n"
                                                  "CREATE TABLE ${TABLE_PREFIX}items (id int);\n"
                                                  "-- +goose Down\nDROP TABLE ${TABLE_PREFIX}items;\n"})
    monkeypatch.delenv("SCHEMAGATE_ENVSUB_NAMES", raising=False)
    monkeypatch.setenv("TABLE_PREFIX", "cli_")
    r = sg(database_url, d, "up", extra=("--envsub-allow", "TABLE_PREFIX"))
    assert r.code == 0, r.text
    assert query(database_url, "SELECT to_regclass('cli_items') IS NOT NULL") == [(True,)]
