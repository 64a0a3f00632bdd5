"""Round trips, the cost users pay per migration when the database is a network hop away (1-2 ms each).

Counted through a loopback relay, never timed. goose spends one round trip per statement plus BEGIN, the
version row and COMMIT on `up`, and one per migration on `status`; we promise one per transactional file
and one query for status and for the plan, whatever the number of files.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from migrate_support import mig, numbered, query, rows, sg, write_dir
from roundtrips import counting_relay

pytestmark = pytest.mark.db


def _fresh(postgres_server) -> str:  # type: ignore[no-untyped-def]
    return postgres_server.create_database(f"rt_{uuid.uuid4().hex[:12]}")


def _round_trips(url: str, directory: Path, *command: str) -> int:
    with counting_relay(url) as (relayed, counter):
        r = sg(relayed, directory, *command)
        assert r.code == 0, r.text
        return counter.round_trips


def test_up_spends_one_round_trip_per_transactional_migration(postgres_server, tmp_path: Path) -> None:
    files = numbered(12)  # each: CREATE TABLE + INSERT, version row, checksum row
    few = write_dir(tmp_path / "few", dict(list(files.items())[:2]))
    many = write_dir(tmp_path / "many", files)
    rt_few = _round_trips(_fresh(postgres_server), few, "up")
    url = _fresh(postgres_server)
    rt_many = _round_trips(url, many, "up")
    assert (rt_many - rt_few) / 10 <= 1, (rt_few, rt_many)
    assert len(rows(url)) == 13 and query(url, "SELECT count(*) FROM applied_log") == [(12,)]
    assert query(url, "SELECT count(*) FROM schemagate_checksums") == [(12,)]


def test_up_with_nothing_to_do_and_status_cost_the_same_for_3_or_40_files(postgres_server, tmp_path: Path) -> None:
    costs = {}
    for n in (3, 40):
        d = write_dir(tmp_path / f"m{n}", numbered(n))
        url = _fresh(postgres_server)
        assert sg(url, d, "up").code == 0
        costs[n] = (_round_trips(url, d, "status"), _round_trips(url, d, "up"), _round_trips(url, d, "validate"))
    assert costs[3] == costs[40], costs


def test_a_statement_holding_two_commands_still_runs_as_goose_runs_it(database_url: str, tmp_path: Path) -> None:
    # One goose statement may hold several commands (simple query protocol): it cannot be pipelined, and a
    # failure after it still names the right statement and rolls the whole file back.
    d = write_dir(tmp_path / "m", {
        "00001_two.sql": mig("CREATE TABLE a (id int); CREATE TABLE b (id int);\nINSERT INTO a VALUES (1);"),
        "00002_bad.sql": mig("CREATE TABLE c (id int); CREATE TABLE d (id int);\nINSERT INTO c VALUES (1);\n"
                             "INSERT INTO nope VALUES (1);\nCREATE TABLE e (id int);"),
    })
    r = sg(database_url, d, "up")
    assert r.code == 1
    err = r.json["error"]
    assert (err["file"], err["statement"], err["line"], err["sqlstate"]) == ("00002_bad.sql", 3, 4, "42P01"), err
    assert query(database_url, "SELECT to_regclass('a') IS NOT NULL, to_regclass('b') IS NOT NULL, "
                               "to_regclass('c'), to_regclass('e')") == [(True, True, None, None)]
    assert rows(database_url) == [(0, True), (1, True)]


def test_in_a_pipelined_file_nothing_after_the_failing_statement_runs(database_url: str, tmp_path: Path) -> None:
    # Statements with effects outside the transaction would show it: a sequence is not rolled back.
    d = write_dir(tmp_path / "m", {
        "00001_seq.sql": mig("CREATE SEQUENCE outside;"),
        "00002_bad.sql": mig("SELECT nextval('outside');\nSELECT 1/0;\nSELECT nextval('outside');\n"
                             "SELECT nextval('outside');"),
    })
    r = sg(database_url, d, "up")
    err = r.json["error"]
    assert (r.code, err["file"], err["statement"], err["line"], err["sqlstate"]) == (1, "00002_bad.sql", 2, 3,
                                                                                    "22012"), err
    assert "line 3: SELECT 1/0" in err["message"] and "rolled back" in err["message"], err["message"]
    assert query(database_url, "SELECT last_value FROM outside") == [(1,)]
    assert rows(database_url) == [(0, True), (1, True)]
