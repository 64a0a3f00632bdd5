"""JSON contract, termination-message size cap, password redaction and `create` naming."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from schemagate.api import reasons
from schemagate.migrate import create, dburl, result
from schemagate.migrate.errors import MigrateError
from schemagate.migrate.runner import AppliedStep, RunResult


def big_result() -> RunResult:
    r = RunResult("up", dburl.Target("db.example", 5432, "app"), "goose_db_version", 0, 900)
    r.applied = [AppliedStep(v, f"{v:05d}_create_something_rather_long.sql", "up", 3) for v in range(1, 901)]
    r.pending = list(range(901, 1400))
    r.error = MigrateError(reasons.MIGRATION_FAILED, "00901_x.sql: up statement 1 failed: " + "x" * 6000,
                           file="00901_x.sql", version=901, line=3, statement=1, sqlstate="42P01")
    return r


def test_json_contract_keys() -> None:
    doc = result.to_json(big_result())
    assert list(doc) == ["schemagate", "command", "ok", "database", "versionBefore", "versionAfter", "applied",
                         "pending", "error"]
    assert doc["database"] == {"host": "db.example", "port": 5432, "name": "app", "table": "goose_db_version"}
    assert doc["applied"][0] == {"version": 1, "file": "00001_create_something_rather_long.sql", "direction": "up",
                                 "durationMs": 3}
    assert set(doc["error"]) == {"reason", "message", "file", "version", "line", "statement", "sqlstate"}


def test_shrink_fits_termination_message_and_keeps_what_matters() -> None:
    small = result.shrink(result.to_json(big_result()))
    assert len(result.compact(small).encode()) <= 4096
    assert small["error"]["reason"] == "MigrationFailed" and small["error"]["file"] == "00901_x.sql"
    assert small["error"]["message"].startswith("00901_x.sql: up statement 1 failed")
    assert small["applied"][-1]["version"] == 900  # the newest step survives
    assert small["appliedOmitted"] + len(small["applied"]) == 900
    assert small["pendingOmitted"] + len(small["pending"]) == 499


def test_shrink_leaves_small_documents_alone() -> None:
    r = RunResult("version", dburl.Target("h", 1, "d"), "t", 3, 3)
    assert result.shrink(result.to_json(r)) == json.loads(json.dumps(result.to_json(r)))


@pytest.mark.parametrize("text", [
    'missing "=" after "postgresql://app:s3cr%t@db:5432/app" in connection info string',
    "host=db user=app password=s3cr%t dbname=app",
    "postgres://app:s3cr%t@db/app?sslmode=disable",
    "postgres://db/app?password=s3cr%t&sslmode=disable",
])
def test_redact_removes_passwords(text: str) -> None:
    out = dburl.redact(text, "postgresql://app:s3cr%t@db:5432/app", env={})
    assert "s3cr" not in out and dburl.REDACTED in out


def test_redact_masks_pgpassword() -> None:
    assert "hunter2" not in dburl.redact("FATAL: hunter2", "", env={"PGPASSWORD": "hunter2"})


def test_describe_never_includes_user_or_password() -> None:
    t = dburl.describe("postgresql://app:pw@db.internal:6543/orders", env={})
    assert t.to_json("goose_db_version") == {"host": "db.internal", "port": 6543, "name": "orders",
                                             "table": "goose_db_version"}


@pytest.mark.parametrize(("name", "snake"), [
    ("add users", "add_users"), ("AddUsers", "addusers"), ("_$$_This is some text, OK?!", "this_is_some_text_ok"),
    ("add-users-table", "add_users_table"),
])
def test_snake_case_like_goose(name: str, snake: str) -> None:
    assert create.snake_case(name) == snake


def test_create_sequential_and_timestamp(tmp_path: Path) -> None:
    p1 = create.create(tmp_path, "first one", sequential=True)
    assert p1.name == "00001_first_one.sql"
    assert p1.read_text().startswith("-- +goose Up\nSELECT 'up SQL query';")
    (tmp_path / "20240101000000_ts.sql").write_text(create.TEMPLATE)
    assert create.create(tmp_path, "second", sequential=True).name == "00002_second.sql"
    now = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
    assert create.create(tmp_path, "ts", sequential=False, now=now).name == "20250304050607_ts.sql"
    with pytest.raises(MigrateError, match="already exists"):
        create.create(tmp_path, "ts", sequential=False, now=now)


def test_lease_unavailable_maps_to_its_reason_before_connecting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from schemagate import cli, lease

    def held_lease(**kwargs):  # type: ignore[no-untyped-def]
        assert kwargs == {"name": "db-lease", "namespace": "apps", "holder": "job-1", "duration_seconds": 15}
        raise lease.LeaseUnavailable("held by job-0 until 12:00:00")

    monkeypatch.setattr(lease, "held_lease", held_lease)
    (tmp_path / "00001_a.sql").write_text("-- +goose Up\nSELECT 1;\n")
    code = cli.main(["migrate", "--dir", str(tmp_path), "--database-url", "postgresql://u:pw@203.0.113.1:1/x",
                     "--json", "--lease-name", "db-lease", "--lease-namespace", "apps", "--lease-holder", "job-1",
                     "--lease-duration", "15", "up"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["error"] == {"reason": "LeaseUnavailable", "message": "Lease apps/db-lease: held by job-0 until 12:00:00",
                            "file": None, "version": None, "line": None, "statement": None, "sqlstate": None}


@pytest.mark.parametrize("url", [
    "postgresql://app:s3cr%zzet@203.0.113.1:1/app",  # libpq: invalid percent-encoded token: "s3cr%zzet"
    "postgresql://app:s3cr%00et@203.0.113.1:1/app",  # libpq: forbidden value %00 ...: "s3cr%00et"
    "postgresql://app@203.0.113.1:1/app?password=s3cr%zzet",
])
def test_unparsable_url_password_quoted_by_libpq_is_redacted(url: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    # libpq quotes the undecodable userinfo/parameter verbatim in its parse error; psycopg cannot decode
    # the URL either, so the password has to be found in the URL's text.
    from schemagate import cli

    (tmp_path / "00001_a.sql").write_text("-- +goose Up\nSELECT 1;\n")
    result_file = tmp_path / "result.json"
    code = cli.main(["migrate", "--dir", str(tmp_path), "--database-url", url, "--json",
                     "--result-file", str(result_file), "up"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert code == 1 and doc["error"]["reason"] == "ConnectionFailed"
    assert "percent-encoded" in doc["error"]["message"]  # the reason is still said
    for text in (out, err, result_file.read_text()):
        assert "s3cr" not in text, text


def test_lease_api_failure_is_a_result_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # The Kubernetes API answering 500 (or being unreachable) must still give the Job a result to report,
    # naming the Lease by the namespace actually used (the pod's, when --lease-namespace is not given).
    from kubernetes.client.exceptions import ApiException

    from schemagate import cli, lease

    def held_lease(**kwargs):  # type: ignore[no-untyped-def]
        raise ApiException(status=500, reason="Internal Server Error")

    monkeypatch.setattr(lease, "held_lease", held_lease)
    monkeypatch.setattr(cli_module(), "_pod_namespace", lambda: "team-a")
    (tmp_path / "00001_a.sql").write_text("-- +goose Up\nSELECT 1;\n")
    result_file = tmp_path / "result.json"
    code = cli.main(["migrate", "--dir", str(tmp_path), "--database-url", "postgresql://u:pw@203.0.113.1:1/x",
                     "--json", "--result-file", str(result_file), "--lease-name", "db-lease", "up"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and json.loads(result_file.read_text()) == doc
    assert doc["error"]["reason"] == "LeaseUnavailable"
    assert doc["error"]["message"].startswith("Lease team-a/db-lease: ")
    assert "500" in doc["error"]["message"]


def test_lease_unavailable_names_the_namespace_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from schemagate import cli, lease

    def held_lease(**kwargs):  # type: ignore[no-untyped-def]
        raise lease.LeaseUnavailable(f"held by job-0 (asked in {kwargs['namespace']})")

    monkeypatch.setattr(lease, "held_lease", held_lease)
    monkeypatch.setattr(cli_module(), "_pod_namespace", lambda: "team-a")
    (tmp_path / "00001_a.sql").write_text("-- +goose Up\nSELECT 1;\n")
    code = cli.main(["migrate", "--dir", str(tmp_path), "--database-url", "postgresql://u:pw@203.0.113.1:1/x",
                     "--json", "--lease-name", "db-lease", "up"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["error"]["message"] == "Lease team-a/db-lease: held by job-0 (asked in team-a)"


def cli_module():  # type: ignore[no-untyped-def]
    from schemagate.migrate import command as migrate_cli

    return migrate_cli


def test_interrupted_between_migrations_does_not_claim_nothing_ran() -> None:
    from schemagate.migrate.command import interrupted as _interrupted

    r = RunResult("up", dburl.Target("h", 1, "d"), "goose_db_version", 0, 1)
    assert "before any migration" in _interrupted(r).message
    r.applied = [AppliedStep(1, "00001_a.sql", "up", 3)]
    e = _interrupted(r)
    assert e.reason == reasons.INTERRUPTED and "before any migration" not in e.message
    assert "after 1 migration step(s)" in e.message and "00001_a.sql" in e.message


def test_redact_finds_an_undecodable_password_in_the_url_text() -> None:
    # The operator's status path calls redact(text, url, env={}) with psycopg's parse error.
    url = "postgresql://app:s3cr%zzet@db:5432/app"
    with pytest.raises(Exception) as info:
        import psycopg

        psycopg.conninfo.conninfo_to_dict(url)
    assert "s3cr%zzet" in str(info.value)  # what libpq says, verbatim
    assert "s3cr" not in dburl.redact(str(info.value), url, env={})


def test_malformed_url_is_said_to_be_malformed_not_blamed_on_a_default_database() -> None:
    from schemagate.migrate import runner

    with pytest.raises(MigrateError) as info:
        runner.connect("host=db.internal password='Secr3t dbname=orders")
    e = info.value
    assert e.reason == reasons.CONNECTION_FAILED
    assert e.message.startswith("the database URL is malformed: unterminated quoted string"), e.message
    assert "localhost" not in e.message and "Secr3t" not in e.message
