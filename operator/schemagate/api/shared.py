"""Values the CRD and the runner must agree on, in a module that imports nothing (the runner's start stays
free of pydantic): the default goose table and what a PostgreSQL duration looks like."""

from __future__ import annotations

import re

DEFAULT_TABLE = "goose_db_version"
"""goose's own default version table."""

PG_DURATION = r"[0-9]+(us|ms|s|min|h|d)?"
"""A lock_timeout / statement_timeout value PostgreSQL takes (a bare number is milliseconds; 0: no limit)."""

_PG_DURATION = re.compile(PG_DURATION)


def is_pg_duration(value: str) -> bool:
    """Whether `value` is a PostgreSQL duration; white space between number and unit is allowed, as
    PostgreSQL allows it."""
    return _PG_DURATION.fullmatch("".join(value.split())) is not None
