"""A connection whose peer went silent fails in bounded time (fault suite: the network between the Job and
the database cut): libpq keepalives and tcp_user_timeout on every session, and the migration session asks
the server to end it when its client is silent, with a reason that says so."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from schemagate.migrate import connection, runner


def _captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_connect(url: str, **kwargs: Any) -> object:
        seen.update(kwargs, url=url)
        return object()

    monkeypatch.setattr(psycopg, "connect", fake_connect)
    return seen


def test_every_session_has_keepalives_and_a_tcp_user_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _captured(monkeypatch)
    connection.open_session("postgresql://u:p@db:5432/app")
    assert seen["keepalives"] == 1
    assert seen["keepalives_idle"] == 10 and seen["keepalives_interval"] == 5 and seen["keepalives_count"] == 3
    assert seen["tcp_user_timeout"] == 30_000


def test_the_urls_own_keepalive_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _captured(monkeypatch)
    connection.open_session("postgresql://u:p@db:5432/app?keepalives_idle=120&tcp_user_timeout=0")
    assert "keepalives_idle" not in seen and "tcp_user_timeout" not in seen  # libpq takes the URL's
    assert seen["keepalives_count"] == 3


class _Info:
    def __init__(self, version: int):
        self.server_version = version


class _Conn:
    """current_setting answers from `settings`; set_config calls are recorded."""

    def __init__(self, version: int, settings: dict[str, str]):
        self.info, self.settings, self.set = _Info(version), settings, {}

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        conn = self

        class _Cur:
            def fetchone(self) -> tuple[str] | None:
                return (conn.settings[params[0]],) if "current_setting" in sql else None

        if "set_config" in sql:
            self.set[params[0]] = params[1]
        return _Cur()


def test_the_migration_session_is_ended_by_the_server_when_its_client_is_silent() -> None:
    conn = _Conn(150000, {"idle_in_transaction_session_timeout": "0", "idle_session_timeout": "0"})
    runner.set_timeouts(conn, runner.RunOptions(table=None, lock_timeout="10s"))  # type: ignore[arg-type]
    assert conn.set["idle_in_transaction_session_timeout"] == connection.SILENT_CLIENT_TIMEOUT
    assert conn.set["idle_session_timeout"] == connection.SILENT_CLIENT_TIMEOUT
    assert conn.set["lock_timeout"] == "10s"


def test_a_timeout_already_set_stays_and_old_servers_get_what_they_have() -> None:
    conn = _Conn(130000, {"idle_in_transaction_session_timeout": "5min"})
    connection.end_if_client_silent(conn)  # type: ignore[arg-type]
    assert conn.set == {}  # 5min kept; PostgreSQL 13 has no idle_session_timeout (never asked)


def test_a_session_ended_for_silence_says_so() -> None:
    e = psycopg.errors.lookup("25P03")("terminating connection due to idle-in-transaction timeout")
    text = runner._primary(e)
    assert "terminating connection due to idle-in-transaction timeout" in text
    assert "network between the Job and the database was cut" in text
