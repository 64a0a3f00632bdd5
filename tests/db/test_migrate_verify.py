"""`schemagate verify`: the application's start-up check, with advice that says exactly what to run."""

from __future__ import annotations

import urllib.parse

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


def test_verify_unreachable_database(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = verify(capsys, "--database-url", "postgresql://u:VerySecret9@127.0.0.1:1/x", "--min-version", "1")
    assert code == 1 and "ConnectionFailed" in err and "VerySecret9" not in err
