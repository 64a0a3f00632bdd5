"""Where the database is, and keeping its password out of every message we print."""

from __future__ import annotations

import getpass
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

_URI_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)([^@\s]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&\s]*)", re.IGNORECASE)
REDACTED = "xxxxx"


def resolve(url: str | None, env: Mapping[str, str] | None = None) -> str:
    """--database-url, else DATABASE_URL, else "" (libpq then reads PGHOST, PGUSER, PGPASSWORD, ...)."""
    env = os.environ if env is None else env
    return url or env.get("DATABASE_URL", "")


def _passwords(url: str, env: Mapping[str, str]) -> list[str]:
    import psycopg.conninfo  # here, not at the top: `migrate --help` must not pay for psycopg

    found = []
    try:
        pw = psycopg.conninfo.conninfo_to_dict(url).get("password")
        if pw:
            found.append(str(pw))
    except psycopg.Error:
        pass
    # As written in the URL too: libpq's parse errors quote an undecodable password verbatim
    # ('invalid percent-encoded token: "s3cr%zz"'), and then conninfo_to_dict cannot find it either.
    for pattern in (_URI_PASSWORD, _QUERY_PASSWORD, _KV_PASSWORD):
        for m in pattern.finditer(url):
            raw = m.group(2).strip("'")
            if raw:
                found += [raw, urllib.parse.unquote(raw)]
    if env.get("PGPASSWORD"):
        found.append(env["PGPASSWORD"])
    return found


def redact(text: str, url: str = "", env: Mapping[str, str] | None = None) -> str:
    """`text` with the whole of `url` (whatever it holds: it came from a Secret, and may not be a URL at
    all) and every password we know of (in `url`, PGPASSWORD, or any URL-looking part) masked."""
    env = os.environ if env is None else env
    for whole in sorted({url, url.strip(), urllib.parse.unquote(url.strip())} - {""}, key=len, reverse=True):
        text = text.replace(whole, REDACTED)
    for pw in sorted(_passwords(url, env), key=len, reverse=True):
        text = text.replace(pw, REDACTED)
    text = _URI_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    text = _KV_PASSWORD.sub(lambda m: m.group(1) + REDACTED, text)
    return _QUERY_PASSWORD.sub(lambda m: m.group(1) + REDACTED, text)


def parse_error(text: str, url: str) -> str:
    """libpq's complaint about a value it cannot parse, with every quoted fragment of that value masked:
    its parse errors quote the text they choke on (`missing "=" after "ghp_..."`), which may be any
    Secret's content, not a URL with a password in the expected place."""
    parts = text.split('"')  # libpq quotes in pairs: the odd parts are the quoted ones
    for i in range(1, len(parts) - 1, 2):
        if len(parts[i]) > 1 and parts[i] in url:
            parts[i] = REDACTED
    return redact('"'.join(parts), url, env={})


@dataclass(frozen=True)
class Target:
    """The database as the JSON result names it: no user, no password."""

    host: str
    port: int
    name: str

    def to_json(self, table: str) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "name": self.name, "table": table}


def describe(url: str, env: Mapping[str, str] | None = None) -> Target:
    """Best effort, before connecting: what libpq would use for host, port and database name."""
    import psycopg.conninfo

    env = os.environ if env is None else env
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        info = {}
    host = str(info.get("host") or env.get("PGHOST") or "localhost")
    try:
        port = int(str(info.get("port") or env.get("PGPORT") or 5432).split(",")[0])
    except ValueError:
        port = 5432
    user = str(info.get("user") or env.get("PGUSER") or getpass.getuser())
    name = str(info.get("dbname") or env.get("PGDATABASE") or user)
    return Target(host, port, name)
