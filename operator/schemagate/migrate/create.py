"""`schemagate migrate create NAME`: a new file named and templated exactly as `goose create NAME sql`."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from schemagate.api import reasons
from schemagate.migrate.errors import MigrateError
from schemagate.migrate.source import version_of

TEMPLATE = """-- +goose Up
SELECT 'up SQL query';

-- +goose Down
SELECT 'down SQL query';
"""
_FIRST_TIMESTAMP = 19700101000000  # goose: versions below this are sequential, not timestamps


def snake_case(name: str) -> str:
    """goose's snakeCase state machine (helpers.go): runs of non-alphanumerics become one `_`."""
    out: list[str] = []
    state = "idle"
    for ch in name:
        alnum = ch.isalpha() or ch.isnumeric()
        if state == "idle":
            state = "first" if alnum else "idle"
        elif state == "first" or state == "alnum":
            state = "alnum" if alnum else "delim"
        elif state == "delim":
            state = "first" if alnum else "idle"
        if state in ("first", "alnum"):
            out.append(ch.lower())
        elif state == "delim":
            out.append("_")
    text = "".join(out)
    return text.removesuffix("_") if state == "idle" else text


def next_sequential(directory: Path) -> int:
    versions = []
    for name in os.listdir(directory):
        try:
            v = version_of(name)
        except ValueError:
            continue
        if v < _FIRST_TIMESTAMP:
            versions.append(v)
    return max(versions, default=0) + 1


def create(directory: str | os.PathLike[str], name: str, sequential: bool,
           now: dt.datetime | None = None) -> Path:
    d = Path(directory)
    if not d.is_dir():
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"migrations directory {d} does not exist")
    if not snake_case(name):
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"migration name {name!r} has no letters or digits")
    if sequential:
        version = f"{next_sequential(d):05d}"
    else:
        version = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d%H%M%S")
    path = d / f"{version}_{snake_case(name)}.sql"
    try:
        with open(path, "x", encoding="utf-8") as f:
            f.write(TEMPLATE)
    except FileExistsError:
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"{path} already exists") from None
    except OSError as e:
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"cannot create {path}: {e.strerror}") from None
    return path
