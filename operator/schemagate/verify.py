"""`schemagate verify`: is the schema an application needs in place? (config-server's start-up check)

Exit 0 when the tracking table says at least --min-version and every required table exists; otherwise 1
with a message that says exactly what to run. Never changes the database.
"""

from __future__ import annotations

import argparse
import sys

from schemagate.migrate import dburl, store
from schemagate.migrate.errors import MigrateError

SEED_TABLES = ("namespaces", "groups", "targets", "target_groups", "exporters", "alert_templates", "alert_rules",
               "check_templates", "check_instances", "bootstrap_tokens")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL, then libpq PG* variables)")
    parser.add_argument("--table", default=store.DEFAULT_TABLE, help="goose tracking table (default: goose_db_version)")
    parser.add_argument("--min-version", type=int, required=True, help="lowest acceptable schema version")
    parser.add_argument("--require-tables", default=",".join(SEED_TABLES),
                        help="comma-separated tables that must exist (default: the ten config-server tables)")
    parser.add_argument("--dir", default="migrations", help="migrations directory named in the advice (default: migrations)")


def missing_tables(present: set[str], required: list[str]) -> list[str]:
    return [t for t in required if t.lower() not in present]


def run(args: argparse.Namespace) -> int:
    from schemagate.migrate import runner  # psycopg only when the command really runs

    url = dburl.resolve(args.database_url)
    required = [t.strip() for t in args.require_tables.split(",") if t.strip()]
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
    except Exception as e:  # a permissions problem, for instance; say it without the URL
        print(f"schemagate verify: DatabaseError: {dburl.redact(str(e).strip(), url)}", file=sys.stderr)
        return 1
    missing = missing_tables({r[0] for r in rows}, required)
    problems = []
    if version < args.min_version:
        problems.append(f"schema version is {version}, need at least {args.min_version}")
    if missing:
        problems.append("missing tables: " + ", ".join(missing))
    if problems:
        print(f"schemagate verify: database {name!r} is not ready: {'; '.join(problems)}. Run migrations first: "
              f"schemagate migrate up --dir {args.dir} --table {args.table}  (or: goose -dir {args.dir} "
              f"-table {args.table} postgres \"$DATABASE_URL\" up)", file=sys.stderr)
        return 1
    print(f"schemagate verify: database {name!r} is at version {version} with all {len(required)} required tables")
    return 0
