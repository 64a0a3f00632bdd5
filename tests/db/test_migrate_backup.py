"""`schemagate migrate --backup-file`: a restorable pg_dump first; a failed dump applies nothing."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import psycopg.conninfo
import pytest

from migrate_support import sg, write_dir
from schemagate.migrate.backup import pg_dump_call

V1 = "-- +goose Up\nCREATE TABLE accounts (id bigint PRIMARY KEY);\n-- +goose Down\nDROP TABLE accounts;\n"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: install PostgreSQL's client tools (Debian: postgresql-client)")
    return path


def test_password_goes_to_the_environment_not_the_command_line():
    argv, env = pg_dump_call("postgresql://app:s3cret-pw@db.example:5433/orders?sslmode=require", "/b/x.dump", {})
    assert not any("s3cret-pw" in a for a in argv) and env["PGPASSWORD"] == "s3cret-pw"
    assert "--format=custom" in argv and "--file=/b/x.dump" in argv
    dbname = next(a for a in argv if a.startswith("--dbname="))
    assert all(part in dbname for part in ("host=db.example", "port=5433", "dbname=orders", "sslmode=require"))


def test_backup_is_taken_before_the_run_and_restorable(database_url: str, tmp_path: Path):
    _tool("pg_dump")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE existing (note text)")
        conn.execute("INSERT INTO existing VALUES ('kept')")
    migrations = write_dir(tmp_path / "m", {"00001_accounts.sql": V1})
    dump = tmp_path / "backups" / "app-g1.dump"
    run = sg(database_url, migrations, "up", extra=("--backup-file", str(dump)))
    assert run.code == 0, run.text
    assert run.json["backup"] == {"file": "app-g1.dump", "bytes": dump.stat().st_size}
    listing = subprocess.run([_tool("pg_restore"), "--list", str(dump)], capture_output=True, text=True, check=True)
    # the dump is of the database as it was before the run: the old table, not the new one
    assert "TABLE public existing" in listing.stdout and "accounts" not in listing.stdout
    assert not list(dump.parent.glob("*.partial"))


def test_failed_backup_applies_nothing_and_says_why(database_url: str, tmp_path: Path):
    _tool("pg_dump")
    role = f"mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 's3cret-pw'")
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        conn.execute("CREATE TABLE payroll (amount bigint)")  # the role may not read it: pg_dump fails
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    url = psycopg.conninfo.make_conninfo(**{**info, "user": role, "password": "s3cret-pw"})
    migrations = write_dir(tmp_path / "m", {"00001_accounts.sql": V1})
    dump = tmp_path / "b" / "x.dump"
    run = sg(url, migrations, "up", extra=("--backup-file", str(dump)))
    assert run.code == 1
    error = run.json["error"]
    assert error["reason"] == "BackupFailed"
    assert "nothing was applied" in error["message"] and "payroll" in error["message"]
    assert "s3cret-pw" not in run.text
    assert not dump.exists() and not list(dump.parent.glob("*"))
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('accounts') IS NULL").fetchone()[0]
