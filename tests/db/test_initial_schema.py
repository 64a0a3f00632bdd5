"""migrations/00001_initial_schema.sql against a real PostgreSQL, applied by the real goose.

What config-server relies on: the ten tables its start-up check looks for, an Up that can run twice, a
Down that leaves nothing behind, soft delete that frees a name, and foreign keys that keep the data whole.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

pytestmark = [pytest.mark.db, pytest.mark.goose]

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "migrations"

TABLES = {
    "namespaces", "groups", "targets", "target_groups", "exporters", "alert_templates",
    "alert_rules", "check_templates", "check_instances", "bootstrap_tokens",
}


def goose(goose_bin: str, url: str, *command: str, directory: Path = MIGRATIONS) -> str:
    proc = subprocess.run([goose_bin, "-dir", str(directory), "postgres", url, *command],
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        # goose echoes nothing of the URL on failure, but say which command failed and what it printed.
        pytest.fail(f"goose {' '.join(command)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def relations(url: str) -> set[str]:
    """Every table, sequence, index and view in the public schema."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'i', 'v', 'm', 'p')").fetchall()
    return {r[0] for r in rows}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'").fetchall()
    return {r[0] for r in rows}


def schema_snapshot(url: str) -> dict[str, list[tuple]]:
    """Columns, constraints and indexes of the public schema, comparable across runs."""
    with psycopg.connect(url) as conn:
        return {
            "columns": conn.execute(
                "SELECT table_name, column_name, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2").fetchall(),
            "constraints": conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2").fetchall(),
            "indexes": conn.execute(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "ORDER BY 1, 2").fetchall(),
        }


def applied_versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT version_id FROM goose_db_version WHERE version_id > 0 ORDER BY id").fetchall()]


@pytest.fixture
def migrated(goose_bin: str, database_url: str) -> str:
    goose(goose_bin, database_url, "up")
    return database_url


def test_goose_up_creates_the_ten_tables_and_records_version_1(goose_bin: str, migrated: str) -> None:
    assert tables(migrated) == TABLES | {"goose_db_version"}
    assert applied_versions(migrated) == [1]
    status = goose(goose_bin, migrated, "status")
    assert "00001_initial_schema.sql" in status and "Pending" not in status


def test_up_sql_run_a_second_time_succeeds_and_changes_nothing(goose_bin: str, migrated: str) -> None:
    with psycopg.connect(migrated) as conn:
        conn.execute("INSERT INTO namespaces (name) VALUES ('prod')")
    before = schema_snapshot(migrated)
    # Forget the version so goose runs the very same Up statements again over the existing schema.
    with psycopg.connect(migrated) as conn:
        conn.execute("DELETE FROM goose_db_version WHERE version_id = 1")
    goose(goose_bin, migrated, "up")
    assert schema_snapshot(migrated) == before
    with psycopg.connect(migrated) as conn:
        assert conn.execute("SELECT name FROM namespaces").fetchall() == [("prod",)]


def test_up_completes_a_table_that_existed_without_soft_delete_or_keys(goose_bin: str, database_url: str) -> None:
    # A table made before this file (CREATE TABLE IF NOT EXISTS skips it) gets the columns, foreign key
    # and indexes the application needs from the guarded ALTERs.
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE namespaces (id bigserial PRIMARY KEY, name text NOT NULL)")
        conn.execute("CREATE TABLE groups (id bigserial PRIMARY KEY, namespace_id bigint NOT NULL, "
                     "name text NOT NULL)")
    goose(goose_bin, database_url, "up")
    with psycopg.connect(database_url) as conn:
        ns = conn.execute("INSERT INTO namespaces (name) VALUES ('prod') RETURNING id").fetchone()[0]
        conn.execute("UPDATE namespaces SET deleted_at = now() WHERE id = %s", (ns,))
        conn.execute("INSERT INTO namespaces (name) VALUES ('prod')")
        with pytest.raises(errors.ForeignKeyViolation):
            conn.execute("INSERT INTO groups (namespace_id, name) VALUES (-1, 'orphan')")


def test_down_removes_everything_but_goose_table_and_up_works_again(goose_bin: str, migrated: str) -> None:
    schema = schema_snapshot(migrated)
    goose(goose_bin, migrated, "down")
    # goose's own table, its key and identity sequence are all that may remain.
    assert {r for r in relations(migrated) if not r.startswith("goose_db_version")} == set()
    assert "goose_db_version" in relations(migrated)
    assert applied_versions(migrated) == []
    goose(goose_bin, migrated, "up")
    assert tables(migrated) == TABLES | {"goose_db_version"}
    assert schema_snapshot(migrated) == schema


def test_down_sql_run_a_second_time_succeeds(goose_bin: str, migrated: str) -> None:
    goose(goose_bin, migrated, "down")
    with psycopg.connect(migrated) as conn:
        conn.execute("INSERT INTO goose_db_version (version_id, is_applied) VALUES (1, true)")
    goose(goose_bin, migrated, "down")
    assert applied_versions(migrated) == []


# Parents the soft-delete cases hang their rows on.
def _parents(conn: psycopg.Connection) -> dict[str, int]:
    ids: dict[str, int] = {}
    ids["ns"] = conn.execute("INSERT INTO namespaces (name) VALUES ('parent') RETURNING id").fetchone()[0]
    ids["target"] = conn.execute(
        "INSERT INTO targets (namespace_id, name, address) VALUES (%s, 'db1', '10.0.0.1') RETURNING id",
        (ids["ns"],)).fetchone()[0]
    ids["check_template"] = conn.execute(
        "INSERT INTO check_templates (name, type) VALUES ('parent-http', 'http') RETURNING id").fetchone()[0]
    return ids


SOFT_DELETE_CASES = [
    ("namespaces", "name", "{name}"),
    ("groups", "namespace_id, name", "{ns}, {name}"),
    ("targets", "namespace_id, name, address", "{ns}, {name}, '10.0.0.9'"),
    ("exporters", "target_id, name, type, port", "{target}, {name}, 'node', 9100"),
    ("alert_templates", "name, expr", "{name}, 'up == 0'"),
    ("alert_rules", "namespace_id, name, expr", "{ns}, {name}, 'up == 0'"),
    ("check_templates", "name, type", "{name}, 'tcp'"),
    ("check_instances", "template_id, target_id, name", "{check_template}, {target}, {name}"),
]


@pytest.mark.parametrize(("table", "columns", "values"), SOFT_DELETE_CASES, ids=[c[0] for c in SOFT_DELETE_CASES])
def test_a_soft_deleted_name_can_be_taken_again_but_a_live_one_cannot(
        migrated: str, table: str, columns: str, values: str) -> None:
    with psycopg.connect(migrated, autocommit=True) as conn:
        ids = _parents(conn)
        insert = (f"INSERT INTO {table} ({columns}) VALUES ("
                  + values.format(name="'same'", **{k: str(v) for k, v in ids.items()}) + ") RETURNING id")
        first = conn.execute(insert).fetchone()[0]
        with pytest.raises(errors.UniqueViolation):
            conn.execute(insert)
        conn.execute(f"UPDATE {table} SET deleted_at = now() WHERE id = %s", (first,))
        second = conn.execute(insert).fetchone()[0]
        assert second != first
        live = conn.execute(f"SELECT count(*) FROM {table} WHERE deleted_at IS NULL AND id IN (%s, %s)",
                            (first, second)).fetchone()[0]
        assert live == 1


def test_foreign_keys_cascade_restrict_and_set_null_on_purge(migrated: str) -> None:
    with psycopg.connect(migrated, autocommit=True) as conn:
        ns = conn.execute("INSERT INTO namespaces (name) VALUES ('prod') RETURNING id").fetchone()[0]
        group = conn.execute("INSERT INTO groups (namespace_id, name) VALUES (%s, 'dbs') RETURNING id",
                             (ns,)).fetchone()[0]
        target = conn.execute("INSERT INTO targets (namespace_id, name, address) "
                              "VALUES (%s, 'db1', '10.0.0.1:9100') RETURNING id", (ns,)).fetchone()[0]
        conn.execute("INSERT INTO target_groups (target_id, group_id) VALUES (%s, %s)", (target, group))
        with pytest.raises(errors.UniqueViolation):
            conn.execute("INSERT INTO target_groups (target_id, group_id) VALUES (%s, %s)", (target, group))
        with pytest.raises(errors.ForeignKeyViolation):
            conn.execute("INSERT INTO target_groups (target_id, group_id) VALUES (%s, -1)", (target,))
        tmpl = conn.execute("INSERT INTO alert_templates (name, expr) VALUES ('down', 'up == 0') "
                            "RETURNING id").fetchone()[0]
        rule = conn.execute("INSERT INTO alert_rules (namespace_id, template_id, group_id, name, expr) "
                            "VALUES (%s, %s, %s, 'db-down', 'up == 0') RETURNING id",
                            (ns, tmpl, group)).fetchone()[0]

        # A template still used by a rule cannot be purged.
        with pytest.raises(errors.ForeignKeyViolation):
            conn.execute("DELETE FROM alert_templates WHERE id = %s", (tmpl,))
        # Purging a group clears the rule's optional scope and the memberships, not the rule or target.
        conn.execute("DELETE FROM groups WHERE id = %s", (group,))
        assert conn.execute("SELECT group_id FROM alert_rules WHERE id = %s", (rule,)).fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM target_groups").fetchone() == (0,)
        # Purging the namespace removes everything that lives in it.
        conn.execute("DELETE FROM namespaces WHERE id = %s", (ns,))
        for table in ("targets", "alert_rules", "groups"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table


def test_bootstrap_tokens_store_only_a_sha256_hash_with_expiry(migrated: str) -> None:
    token = "sgt_s3cr3t-bootstrap-token"
    digest = hashlib.sha256(token.encode()).hexdigest()
    with psycopg.connect(migrated, autocommit=True) as conn:
        ns = conn.execute("INSERT INTO namespaces (name) VALUES ('prod') RETURNING id").fetchone()[0]
        with pytest.raises(errors.CheckViolation):
            conn.execute("INSERT INTO bootstrap_tokens (namespace_id, token_hash, expires_at) "
                         "VALUES (%s, %s, now() + interval '1 day')", (ns, token))
        with pytest.raises(errors.NotNullViolation):
            conn.execute("INSERT INTO bootstrap_tokens (namespace_id, token_hash) VALUES (%s, %s)", (ns, digest))
        conn.execute("INSERT INTO bootstrap_tokens (namespace_id, token_hash, expires_at, max_uses) "
                     "VALUES (%s, %s, now() + interval '1 day', 1)", (ns, digest))
        # The hash is the lookup key, unique even against soft-deleted rows.
        conn.execute("UPDATE bootstrap_tokens SET deleted_at = now()")
        with pytest.raises(errors.UniqueViolation):
            conn.execute("INSERT INTO bootstrap_tokens (namespace_id, token_hash, expires_at) "
                         "VALUES (%s, %s, now() + interval '1 day')", (ns, digest))
        with pytest.raises(errors.CheckViolation):
            conn.execute("UPDATE bootstrap_tokens SET use_count = 2")


def test_foreign_key_columns_are_indexed(migrated: str) -> None:
    # An unindexed FK column makes every purge of the parent scan the child table.
    with psycopg.connect(migrated) as conn:
        unindexed = conn.execute("""
            SELECT c.conrelid::regclass::text, a.attname
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
              AND NOT EXISTS (
                SELECT 1 FROM pg_index i
                WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1] AND i.indpred IS NULL)
        """).fetchall()
    assert unindexed == []


# --- schemagate and goose on one database, in either order ----------------------------------------------

def schemagate(url: str, *command: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "schemagate.cli", "migrate", "--dir", str(MIGRATIONS),
                           "--database-url", url, *command],
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        pytest.fail(f"schemagate migrate {' '.join(command)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def schema_tables(url: str) -> set[str]:
    """The application's tables: everything but goose's tracking table and schemagate's checksum table."""
    return {t for t in tables(url) if not t.startswith(("goose_", "schemagate_"))}


def test_schemagate_up_then_goose_sees_everything_applied(goose_bin: str, database_url: str) -> None:
    schemagate(database_url, "up")
    assert schema_tables(database_url) == TABLES
    status = goose(goose_bin, database_url, "status")
    assert "00001_initial_schema.sql" in status and "Pending" not in status
    assert "goose: version 1" in goose(goose_bin, database_url, "version")
    # goose finds nothing left to do, and its Down undoes schemagate's Up.
    assert "no migrations to run" in goose(goose_bin, database_url, "up")
    goose(goose_bin, database_url, "down")
    assert schema_tables(database_url) == set()


def test_goose_up_then_schemagate_sees_everything_applied(goose_bin: str, migrated: str) -> None:
    rows_before = applied_versions(migrated)
    schemagate(migrated, "up")
    assert applied_versions(migrated) == rows_before == [1]
    status = schemagate(migrated, "status")
    assert "00001_initial_schema.sql" in status and "Pending" not in status
    schemagate(migrated, "down")
    assert schema_tables(migrated) == set()
    assert applied_versions(migrated) == []


def test_schemagate_verify_accepts_the_schema_goose_applied(migrated: str) -> None:
    # The start-up check config-server relies on: the ten tables and version 1 are what 00001 provides.
    proc = subprocess.run([sys.executable, "-m", "schemagate.cli", "verify", "--database-url", migrated,
                           "--min-version", "1"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
