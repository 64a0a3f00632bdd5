"""The benchmark's migrations: N goose files shaped like a real application's history.

Version 1 is the config-server schema (migrations/00001_initial_schema.sql: ten tables, StatementBegin
blocks); then odd versions create a table (every PLPGSQL_EVERY-th with a trigger function and a DO
block), even versions are a few small ALTERs on the latest table, and every CONCURRENTLY_EVERY-th file is
a NO TRANSACTION CREATE INDEX CONCURRENTLY, as real sets that index a big table online have.

Pure functions: rendering only, no I/O except reading the schema file and `write_migrations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Every PLPGSQL_EVERY-th migration carries a plpgsql body, so StatementBegin/End parsing is exercised in
# a realistic proportion (triggers and backfill DO blocks are a minority of real migrations).
PLPGSQL_EVERY = 5
CONCURRENTLY_EVERY = 50
ROWS_PER_MIGRATION = 3
INITIAL_SCHEMA = Path(__file__).resolve().parent.parent / "migrations" / "00001_initial_schema.sql"
INITIAL_TABLES = ("namespaces", "groups", "targets", "target_groups", "exporters", "alert_templates",
                  "alert_rules", "check_templates", "check_instances", "bootstrap_tokens")


@dataclass(frozen=True)
class Migration:
    version: int
    filename: str
    text: str  # the whole goose file
    up_sql: str  # the Up statements alone, plain SQL that psql can run
    transactional: bool = True  # False: NO TRANSACTION (psql must run it outside a transaction block)
    creates_table: bool = False  # a bench_ table (what check_applied counts)


def table_name(version: int) -> str:
    return f"bench_{version:05d}"


def render_table(version: int) -> Migration:
    """A table, an index, a few rows; every PLPGSQL_EVERY-th also a trigger."""
    table = table_name(version)
    rows = ",\n".join(
        f"    ('item-{version}-{i}', '{{\"n\": {i}, \"source\": \"bench\"}}'::jsonb)"
        for i in range(1, ROWS_PER_MIGRATION + 1))
    plain = [
        f"CREATE TABLE IF NOT EXISTS {table} (\n"
        "    id bigserial PRIMARY KEY,\n"
        "    name text NOT NULL,\n"
        "    payload jsonb NOT NULL DEFAULT '{}'::jsonb,\n"
        "    created_at timestamptz NOT NULL DEFAULT now(),\n"
        "    updated_at timestamptz NOT NULL DEFAULT now(),\n"
        "    deleted_at timestamptz\n"
        ");",
        f"CREATE UNIQUE INDEX IF NOT EXISTS uq_{table}_name ON {table} (name) WHERE deleted_at IS NULL;",
        f"INSERT INTO {table} (name, payload) VALUES\n{rows};",
    ]
    blocks: list[str] = []
    down = [f"DROP TABLE IF EXISTS {table};"]
    if version % PLPGSQL_EVERY == 0:
        blocks.append(
            f"CREATE OR REPLACE FUNCTION {table}_touch() RETURNS trigger AS $$\n"
            "BEGIN\n"
            "    NEW.updated_at := now();\n"
            "    RETURN NEW;\n"
            "END;\n"
            "$$ LANGUAGE plpgsql;")
        blocks.append(
            "DO $$\n"
            "BEGIN\n"
            f"    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{table}_touch') THEN\n"
            f"        CREATE TRIGGER {table}_touch BEFORE UPDATE ON {table}\n"
            f"            FOR EACH ROW EXECUTE FUNCTION {table}_touch();\n"
            "    END IF;\n"
            "END\n"
            "$$;")
        down.append(f"DROP FUNCTION IF EXISTS {table}_touch();")

    lines = [f"-- Benchmark migration {version}: {table}.", "", "-- +goose Up"]
    lines += plain
    for block in blocks:
        lines += ["", "-- +goose StatementBegin", block, "-- +goose StatementEnd"]
    lines += ["", "-- +goose Down", *down, ""]
    return Migration(version=version, filename=f"{version:05d}_create_{table}.sql", text="\n".join(lines),
                     up_sql="\n".join([*plain, *blocks]) + "\n", creates_table=True)


def latest_table(version: int) -> str:
    """The bench table the latest odd version before `version` created (version 1 is the schema)."""
    odd = version - 1 if version % 2 == 0 else version - 2  # odd versions are never CONCURRENTLY ones
    return table_name(odd) if odd > 1 else "namespaces"


def render_alters(version: int) -> Migration:
    """Small ALTERs on the latest table: a column, its default, a comment; the common migration."""
    table = latest_table(version)
    column = f"note_{version}"
    up = [f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} text;",
          f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT '';",
          f"COMMENT ON COLUMN {table}.{column} IS 'added by benchmark migration {version}';"]
    text = "\n".join([f"-- Benchmark migration {version}: small ALTERs on {table}.", "", "-- +goose Up", *up, "",
                      "-- +goose Down", f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column};", ""])
    return Migration(version, f"{version:05d}_alter_{table}.sql", text, "\n".join(up) + "\n")


def render_concurrently(version: int) -> Migration:
    """NO TRANSACTION: an index built online, which PostgreSQL refuses inside a transaction block."""
    table = latest_table(version)
    up = f"CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_{table}_created_{version} ON {table} (created_at);"
    text = "\n".join([f"-- Benchmark migration {version}: an online index on {table}.", "",
                      "-- +goose NO TRANSACTION", "-- +goose Up", up, "", "-- +goose Down",
                      f"DROP INDEX CONCURRENTLY IF EXISTS ix_{table}_created_{version};", ""])
    return Migration(version, f"{version:05d}_index_{table}.sql", text, up + "\n", transactional=False)


def render_initial_schema() -> Migration:
    text = INITIAL_SCHEMA.read_text()
    up = text.split("-- +goose Up", 1)[1].split("-- +goose Down", 1)[0]
    # psql runs the same statements; goose's annotations are comments to it.
    return Migration(1, "00001_initial_schema.sql", text, up)


def render(version: int) -> Migration:
    if version == 1:
        return render_initial_schema()
    if version % CONCURRENTLY_EVERY == 0:
        return render_concurrently(version)
    if version % 2 == 0:
        return render_alters(version)
    return render_table(version)


def render_all(n: int) -> list[Migration]:
    return [render(v) for v in range(1, n + 1)]


def expected_tables(migrations: list[Migration]) -> int:
    """bench_ tables after every Up ran."""
    return sum(m.creates_table for m in migrations)


def first_table(migrations: list[Migration]) -> str | None:
    return next((table_name(m.version) for m in migrations if m.creates_table), None)


def psql_script(migrations: list[Migration]) -> str:
    """Every Up in order, as one script for `psql -f`: one transaction per run of transactional files,
    NO TRANSACTION files between them, as the floor of what any runner has to send."""
    out: list[str] = []
    open_tx = False
    for m in migrations:
        if m.transactional and not open_tx:
            out.append("BEGIN;")
            open_tx = True
        elif not m.transactional and open_tx:
            out.append("COMMIT;")
            open_tx = False
        out.append(m.up_sql)
    if open_tx:
        out.append("COMMIT;")
    return "\n".join(out) + "\n"


def write_migrations(directory: Path, migrations: list[Migration]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for m in migrations:
        (directory / m.filename).write_text(m.text)
