"""The one way schemagate opens a PostgreSQL session — the runner, `verify`, `migrate plan` and the operator's
own read of the version table — and the one classification of its failures.

Every failure is a MigrateError whose reason is AuthenticationFailed (the database refused the login) or
ConnectionFailed (anything else: unreachable, TLS, no such database, the connection lost mid-read), and
whose message names the database without any password.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
import psycopg.conninfo

from schemagate.api import reasons
from schemagate.migrate import dburl
from schemagate.migrate.errors import MigrateError

DEFAULT_CONNECT_TIMEOUT = 10  # seconds; libpq's default is to wait forever for an unreachable host
# A connection whose peer went silent (a cut network, a node gone) fails in bounded time instead of waiting
# forever on a read: TCP keepalives from libpq (probe after 10 s idle, every 5 s, give up after 3 misses) and
# tcp_user_timeout (sent data unacknowledged for 30 s). A URL that sets any of them keeps its own value.
KEEPALIVES: dict[str, int] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                              "keepalives_count": 3, "tcp_user_timeout": 30_000}
# The server's side of the same: a session that waits this long for its client, inside a transaction or
# outside (the runner never pauses between statements), is ended by the server, so its locks are freed and
# the close reaches the client even where something between them keeps TCP alive (a proxy, a NAT).
SILENT_CLIENT_TIMEOUT = "30s"
# Migration files are UTF-8 and so are the names read back. On a SQL_ASCII database the server's default
# would make psycopg hand every text value over as bytes; any other encoding converts.
CLIENT_ENCODING = "UTF8"


def open_session(url: str, *, connect_timeout: int | None = None) -> psycopg.Connection[Any]:
    """An autocommit session (transactions are explicit), no server-side prepared statements (poolers),
    named `schemagate` in pg_stat_activity. `connect_timeout` None: the URL's or PGCONNECT_TIMEOUT if either
    says, else DEFAULT_CONNECT_TIMEOUT."""
    kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": None, "application_name": "schemagate",
                              "client_encoding": CLIENT_ENCODING}
    if connect_timeout is not None:
        kwargs["connect_timeout"] = connect_timeout
    elif "connect_timeout" not in url and not os.environ.get("PGCONNECT_TIMEOUT"):
        kwargs["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
    kwargs.update(_keepalives(url))
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.Error as e:
        raise failure(e, url) from None


def _keepalives(url: str) -> dict[str, int]:
    """KEEPALIVES, less what the URL sets itself (a malformed URL: all, and connect() says what is wrong)."""
    try:
        own = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        own = {}
    return {k: v for k, v in KEEPALIVES.items() if k not in own}


def end_if_client_silent(conn: psycopg.Connection[Any]) -> None:
    """Ask the server to end this session once it has waited SILENT_CLIENT_TIMEOUT for the client, inside a
    transaction (idle_in_transaction_session_timeout) or outside one (idle_session_timeout, PostgreSQL 14+):
    a migration whose client went silent mid-file then fails with the server's reason and releases its
    locks, rather than hanging on both ends. A timeout already set (server, role, the URL's options) stays."""
    settings = ["idle_in_transaction_session_timeout"]
    if conn.info.server_version >= 140000:
        settings.append("idle_session_timeout")
    for name in settings:
        row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
        if row is not None and str(row[0]).strip() in {"0", "0ms", "0s"}:
            conn.execute("SELECT set_config(%s, %s, false)", (name, SILENT_CLIENT_TIMEOUT))


def failure(e: psycopg.Error, url: str) -> MigrateError:
    """What a failed or lost connection to `url` means, said without the password."""
    text = dburl.redact(str(e).strip() or type(e).__name__, url)
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as parse:  # describe() would fall back to localhost and the user's name
        return MigrateError(reasons.CONNECTION_FAILED, f"the database URL is malformed: "
                                                       f"{dburl.parse_error(str(parse).strip(), url)}")
    target = dburl.describe(url)
    where = f"{target.host}:{target.port}/{target.name}"  # what is said on purpose: never the user or options
    low = text.lower()
    sqlstate = getattr(e, "sqlstate", None) or ""
    if sqlstate.startswith("28") or "authentication failed" in low or "no password supplied" in low:
        return MigrateError(reasons.AUTHENTICATION_FAILED, f"cannot log in to database {where}: {text}")
    return MigrateError(reasons.CONNECTION_FAILED, f"cannot reach database {where}: {text}")
