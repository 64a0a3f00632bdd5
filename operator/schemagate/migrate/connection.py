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
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.Error as e:
        raise failure(e, url) from None


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
