"""The benchmark's migrations: N goose files shaped like a real application's history.

Pure functions: rendering only, no I/O except `write_migrations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Every PLPGSQL_EVERY-th migration carries a plpgsql body, so StatementBegin/End parsing is exercised in
# a realistic proportion (triggers and backfill DO blocks are a minority of real migrations).
PLPGSQL_EVERY = 5
ROWS_PER_MIGRATION = 3


@dataclass(frozen=True)
class Migration:
    version: int
    filename: str
    text: str  # the whole goose file
    up_sql: str  # the Up statements alone, plain SQL that psql can run


def table_name(version: int) -> str:
    return f"bench_{version:05d}"


def render(version: int) -> Migration:
    """Migration `version`: a table, an index, a few rows; every PLPGSQL_EVERY-th also a trigger."""
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
                     up_sql="\n".join([*plain, *blocks]) + "\n")


def render_all(n: int) -> list[Migration]:
    return [render(v) for v in range(1, n + 1)]


def concatenated_up(migrations: list[Migration]) -> str:
    """Every Up in order, as one script: what `psql -1 -f` runs."""
    return "\n".join(m.up_sql for m in migrations)


def write_migrations(directory: Path, migrations: list[Migration]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for m in migrations:
        (directory / m.filename).write_text(m.text)
