"""The runner under faults: killed mid-file, its connection lost mid-run. What it leaves for the operator to
read, and what the next run does with what it left in the database."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from migrate_support import mig, query, rows, sg, sg_process, write_dir

pytestmark = pytest.mark.db


def _wait_for(url: str, sql: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(url, sql)[0][0]:
            return
        time.sleep(0.05)
    raise AssertionError(f"never true: {sql}")


SLOW_NO_TX = mig("CREATE TABLE half (id int);\nSELECT pg_sleep(30);\nCREATE TABLE other_half (id int);",
                 "DROP TABLE other_half;\nDROP TABLE half;", extra="-- +goose NO TRANSACTION\n")
RUNNING_SLEEP = "SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'"


def test_a_runner_killed_inside_a_no_transaction_file_leaves_its_progress_and_the_retry_refuses_to_guess(
        database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {"00001_a.sql": mig("CREATE TABLE a (id int);"), "00002_half.sql": SLOW_NO_TX})
    result_file = tmp_path / "termination-log"
    proc = sg_process(database_url, d, "up", extra=("--result-file", str(result_file)))
    try:
        _wait_for(database_url, RUNNING_SLEEP)
        proc.send_signal(signal.SIGKILL)  # no handler runs: only what was written before stays
        proc.wait(timeout=10)
    finally:
        proc.kill()
    query(database_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'")
    progress = json.loads(result_file.read_text())
    assert progress["progress"] is True and [a["file"] for a in progress["applied"]] == ["00001_a.sql"]
    assert progress["running"] == {"version": 2, "file": "00002_half.sql", "direction": "up", "noTransaction": True}
    assert rows(database_url) == [(0, True), (1, True)]
    assert query(database_url, "SELECT to_regclass('half') IS NOT NULL") == [(True,)]  # half of it is there

    retry = sg(database_url, d, "up")
    err = retry.json["error"]
    assert retry.code == 1 and (err["reason"], err["file"], err["version"]) == ("NoTransactionInterrupted",
                                                                               "00002_half.sql", 2), retry.text
    for words in ("stopped part-way", "cannot know", "Check the objects", "resolve-interrupted 2", "nothing was run"):
        assert words in err["message"], err["message"]
    assert "already exists" not in err["message"] and rows(database_url) == [(0, True), (1, True)]

    query(database_url, "DROP TABLE half")  # what a person does after looking: undo the half that ran
    resolved = sg(database_url, d, "resolve-interrupted", "2")
    assert resolved.code == 0, resolved.text
    (d / "00002_half.sql").write_text(SLOW_NO_TX.replace("SELECT pg_sleep(30);\n", ""))
    again = sg(database_url, d, "up")
    assert again.code == 0, again.text
    assert rows(database_url)[-1] == (2, True)


def test_a_no_transaction_file_that_fails_on_its_first_statement_leaves_nothing_to_resolve(
        database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / "m", {"00001_t.sql": mig("SELECT 1/0;\nCREATE TABLE t (id int);",
                                                      extra="-- +goose NO TRANSACTION\n")})
    assert sg(database_url, d, "up").code == 1
    (d / "00001_t.sql").write_text(mig("CREATE TABLE t (id int);", extra="-- +goose NO TRANSACTION\n"))
    fixed = sg(database_url, d, "up")
    assert fixed.code == 0, fixed.text


def test_version_after_is_what_the_database_holds_when_the_runs_connection_is_terminated(
        database_url: str, tmp_path: Path) -> None:
    """A PostgreSQL restart kills the runner's session (57P01); versionAfter must still be the truth."""
    files = {f"{v:05d}_t{v}.sql": mig(f"CREATE TABLE t{v} (id int);") for v in range(1, 4)}
    files["00004_slow.sql"] = mig("SELECT pg_sleep(30);")
    d = write_dir(tmp_path / "m", files)
    proc = sg_process(database_url, d, "up")
    _wait_for(database_url, RUNNING_SLEEP)
    query(database_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'schemagate'")
    out, err = proc.communicate(timeout=60)
    doc = json.loads(out)
    assert proc.returncode == 1 and doc["error"]["file"] == "00004_slow.sql", err
    assert doc["versionBefore"] == 0 and doc["versionAfter"] == 3, doc
