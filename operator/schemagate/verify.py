"""`schemagate verify`: is the schema an application needs in place? (an application's start-up check)

What is needed is read from the migrations the application ships with (--dir): the newest version, and
the tables the Up sections create (less the ones later Up sections drop or rename). --min-version and
--require-tables override either. Exit 0 when the tracking table says at least that version and every
required table exists; otherwise 1 with a message that says exactly what to run; 2 for bad usage or
files. Never changes the database.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from schemagate.api import reasons, shared
from schemagate.migrate import dburl, source, sqlshape, store
from schemagate.migrate.errors import MigrateError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL, then libpq PG* variables)")
    parser.add_argument("--table", default=shared.DEFAULT_TABLE,
                        help="goose tracking table (default: goose_db_version)")
    parser.add_argument("--dir", default="migrations",
                        help="the application's migrations: what is required, and named in the advice "
                             "(default: migrations)")
    parser.add_argument("--min-version", type=int,
                        help="lowest acceptable schema version (default: the newest version in --dir)")
    parser.add_argument("--require-tables",
                        help="comma-separated tables that must exist (default: the tables the Up sections in "
                             "--dir create, up to --min-version)")


def created_tables(migrations: Sequence[source.Migration], up_to: int | None = None) -> list[str]:
    """Pure: the tables the Up sections create, in creation order, as they stand after version `up_to`."""
    tables: dict[str, None] = {}
    for m in migrations:
        if up_to is not None and m.version > up_to:
            break
        for st in m.parsed.up:
            s = sqlshape.shape(st.sql)
            for t in s.drops:
                tables.pop(t, None)
            for t in s.creates:
                tables[t] = None
    return list(tables)


def missing_tables(present: set[str], required: list[str]) -> list[str]:
    return [t for t in required if t.lower() not in present]


def requirements(args: argparse.Namespace) -> tuple[int, list[str]]:
    """(minimum version, required tables): the flags, else what the files in --dir say."""
    tables = None if args.require_tables is None else [t.strip() for t in args.require_tables.split(",") if t.strip()]
    if args.min_version is not None and tables is not None:
        return args.min_version, tables  # nothing to read: --dir may be absent
    try:
        migrations = source.load_files(source.read_dir(args.dir), env={})
    except MigrateError as e:
        raise MigrateError(e.reason, f"{e.message}; --dir names the application's migrations (or give both "
                                     "--min-version and --require-tables)", details=e.details) from None
    if not migrations:
        raise MigrateError(reasons.NO_MIGRATION_FILES, f"no migration files in {args.dir}: --dir names the "
                                                       "application's migrations")
    version = args.min_version if args.min_version is not None else migrations[-1].version
    return version, tables if tables is not None else created_tables(migrations, version)


def run(args: argparse.Namespace) -> int:
    try:
        min_version, required = requirements(args)
    except MigrateError as e:
        print(f"schemagate verify: {e.reason}: {e.message}", file=sys.stderr)
        return 2
    from schemagate.migrate import runner  # psycopg only when the command really runs

    url = dburl.resolve(args.database_url)
    try:
        table = store.parse_table_name(args.table)
        conn = runner.connect(url)
    except MigrateError as e:
        print(f"schemagate verify: {e.reason}: {dburl.redact(e.message, url)}", file=sys.stderr)
        return 2 if e.reason == "InvalidArguments" else 1
    try:
        with conn:
            version = store.read_state(conn, table).current_version
            rows = conn.execute("SELECT lower(table_name) FROM information_schema.tables "
                                "WHERE table_schema = ANY (current_schemas(false))").fetchall()
            name = conn.info.dbname
    except Exception as e:  # noqa: BLE001  a permissions problem, for instance; say it without the URL
        print(f"schemagate verify: DatabaseError: {dburl.redact(str(e).strip(), url)}", file=sys.stderr)
        return 1
    missing = missing_tables({r[0] for r in rows}, required)
    problems = []
    if version < min_version:
        problems.append(f"schema version is {version}, need at least {min_version}")
    if missing:
        problems.append("missing tables: " + ", ".join(missing))
    if problems:
        print(f"schemagate verify: database {name!r} is not ready: {'; '.join(problems)}. Run migrations first: "
              f"schemagate migrate up --dir {args.dir} --table {args.table}  (or: goose -dir {args.dir} "
              f"-table {args.table} postgres \"$DATABASE_URL\" up)", file=sys.stderr)
        return 1
    print(f"schemagate verify: database {name!r} is at version {version} (need {min_version}) with all "
          f"{len(required)} required tables")
    return 0
