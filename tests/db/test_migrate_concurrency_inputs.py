"""Many runners at once, the advisory lock, and bad inputs: each with a clear error and no password shown."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import psycopg
import pytest

from migrate_support import mig, numbered, query, rows, sg, sg_process, write_dir
from schemagate.migrate import source, store

pytestmark = pytest.mark.db


def test_twelve_runners_at_once_apply_each_migration_exactly_once(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", numbered(6))
    procs = [sg_process(database_url, d, "up") for _ in range(12)]
    results = [(p.wait(timeout=180), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    for code, out, err in results:
        assert code == 0, out + err
    applied = sorted(a["version"] for _, out, _ in results for a in json.loads(out)["applied"])
    assert applied == [1, 2, 3, 4, 5, 6]  # every version applied by exactly one runner
    assert query(database_url, "SELECT version, count(*) FROM applied_log GROUP BY version ORDER BY version") == [
        (v, 1) for v in range(1, 7)]
    assert rows(database_url) == [(v, True) for v in range(0, 7)]


def test_lock_wait_gives_up_with_a_clear_message(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", numbered(2))
    with psycopg.connect(database_url, autocommit=True, application_name="other-migrator") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (store.ADVISORY_LOCK_KEY,))
        pid = holder.info.backend_pid
        r = sg(database_url, d, "up", extra=("--lock-wait", "1"))
    assert r.code == 1
    err = r.json["error"]
    assert err["reason"] == "LockTimeout"
    assert f"backend pid {pid} (other-migrator)" in err["message"] and "--lock-wait 1s" in err["message"]
    assert query(database_url, "SELECT to_regclass('goose_db_version')") == [(None,)]
    assert sg(database_url, d, "up").code == 0  # the lock is free again once the holder went away


def bad_input(url: str, d: Path, *extra: str) -> tuple[int, dict, str]:
    r = sg(url, d, "up", extra=extra)
    return r.code, r.json["error"], r.text


def test_duplicate_versions_and_bad_names_touch_nothing(database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "dup", {"00001_a.sql": mig("SELECT 1;"), "001_b.sql": mig("SELECT 1;")})
    code, err, text = bad_input(database_url, d)
    assert code == 2 and err["reason"] == "InvalidMigrations"
    assert "found duplicate migration version 1" in err["message"] and "001_b.sql" in err["message"]
    d = write_dir(tmp_path / "names", {"00001_a.sql": mig("SELECT 1;"), "v2_add.sql": mig("SELECT 1;")})
    code, err, _ = bad_input(database_url, d)
    assert (code, err["reason"], err["file"]) == (2, "InvalidMigrations", "v2_add.sql")
    d = write_dir(tmp_path / "grammar", {"00001_a.sql": mig("SELECT 1;"), "00002_b.sql": "-- +goose Up\nSELECT 1\n"})
    code, err, _ = bad_input(database_url, d)
    assert (code, err["file"], err["line"]) == (2, "00002_b.sql", 2) and "missing semicolon" in err["message"]
    assert query(database_url, "SELECT to_regclass('goose_db_version')") == [(None,)]  # validated before connecting
    empty = write_dir(tmp_path / "empty", {"README.md": "no migrations"})
    code, err, _ = bad_input(database_url, empty)
    assert (code, err["reason"]) == (2, "NoMigrationFiles")


def test_missing_and_unreadable_directory(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, err, _ = bad_input(database_url, tmp_path / "nope")
    assert code == 2 and f"migrations directory {tmp_path / 'nope'} does not exist" in err["message"]
    d = write_dir(tmp_path / "locked", numbered(1))
    if os.geteuid() == 0:
        # root reads any directory, so the kernel's refusal is simulated at the one call that meets it
        def refuse(path):  # type: ignore[no-untyped-def]
            raise PermissionError(13, "Permission denied", str(path))
        monkeypatch.setattr(source.os, "scandir", refuse)
    else:
        d.chmod(0)
    try:
        code, err, _ = bad_input(database_url, d)
    finally:
        d.chmod(0o755)
    assert code == 2 and err["message"] == f"cannot read migrations directory {d}: permission denied"


def test_wrong_password_is_reported_without_the_password(postgres_server, database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", numbered(1))
    secret = "Sup3r-S3cret-Passw0rd"
    url = database_url.replace(database_url.split("//", 1)[1].split("@", 1)[0], f"postgres:{secret}")
    for extra in ((), ("--result-file", str(tmp_path / "result.json"))):
        r = sg(url, d, "up", extra=extra)
        assert r.code == 1
        assert r.json["error"]["reason"] == "AuthenticationFailed"
        assert "password authentication failed" in r.json["error"]["message"]
        assert secret not in r.text
    assert secret not in (tmp_path / "result.json").read_text()
    assert "postgres" not in json.dumps(r.json["database"]).replace('"name": "', "")  # no user in the result


def test_unreachable_host_and_malformed_url(tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", numbered(1))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens on it once closed
    r = sg(f"postgresql://app:TopSecret1@127.0.0.1:{port}/app", d, "up")
    assert r.code == 1 and r.json["error"]["reason"] == "ConnectionFailed"
    assert f"127.0.0.1:{port}" in r.json["error"]["message"] and "TopSecret1" not in r.text
    r = sg("host=127.0.0.1 password=TopSecret2 port=notaport", d, "up")
    assert r.code == 1 and r.json["error"]["reason"] == "ConnectionFailed" and "TopSecret2" not in r.text
    r = sg("postgresql://app:TopSecret3@127.0.0.1:5432/app?bogus_option=1", d, "up")
    assert r.code == 1 and "TopSecret3" not in r.text, r.text


def test_sigterm_cancels_the_running_migration_and_still_reports(database_url: str, tmp_path: Path) -> None:
    import signal
    import time

    d = write_dir(tmp_path / "m", {"00001_a.sql": mig("CREATE TABLE a (id int);"),
                                   "00002_slow.sql": mig("CREATE TABLE b (id int);\nSELECT pg_sleep(60);")})
    out = tmp_path / "termination-log"
    proc = sg_process(database_url, d, "up", extra=("--result-file", str(out)))
    deadline = time.monotonic() + 60
    while not query(database_url, "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stdout + stderr
    doc = json.loads(out.read_text())
    assert (doc["error"]["reason"], doc["error"]["file"], doc["versionAfter"]) == ("Interrupted", "00002_slow.sql", 1)
    assert rows(database_url) == [(0, True), (1, True)]
    assert query(database_url, "SELECT to_regclass('b')") == [(None,)]
    assert query(database_url, "SELECT pg_try_advisory_lock(%s)", (store.ADVISORY_LOCK_KEY,)) == [(True,)]
