"""verify's requirements come from the application's files, never from the product's code."""

from __future__ import annotations

import re
from pathlib import Path

from schemagate import verify
from schemagate.migrate import source

REPO = Path(__file__).resolve().parents[2]


def test_the_tables_the_up_sections_leave():
    ms = source.load_files({
        "00001_a.sql": "-- +goose Up\nCREATE TABLE IF NOT EXISTS a (id bigint);\nCREATE TABLE \"Old\" (id bigint);\n"
                       "-- +goose Down\nDROP TABLE b;\n",
        "00002_b.sql": "-- +goose Up\nALTER TABLE IF EXISTS a RENAME TO accounts;\nDROP TABLE IF EXISTS \"Old\";\n"
                       "CREATE TABLE IF NOT EXISTS public.c (x text DEFAULT 'CREATE TABLE d (y int)');\n",
    }, env={})
    assert verify.created_tables(ms) == ["accounts", "c"]
    assert verify.created_tables(ms, up_to=1) == ["a", "Old"]


def test_the_project_needs_its_ten_tables():
    assert len(verify.created_tables(source.load_dir(REPO / "migrations"))) == 10


def test_no_application_table_name_is_written_in_the_product():
    names = verify.created_tables(source.load_dir(REPO / "migrations"))
    quoted = re.compile("|".join(rf"""["']{re.escape(n)}["']""" for n in names))
    hits = [f"{path.relative_to(REPO)}: {m.group()}" for path in (REPO / "operator" / "schemagate").rglob("*.py")
            for m in quoted.finditer(path.read_text())]
    assert hits == []
