"""Statement splitting judged by the real goose: `goose -v up` logs every statement it executes; ours must
be the same list (compared the way goose logs them, comment lines removed)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from migrate_support import write_dir
from schemagate.migrate.parser import parse

pytestmark = [pytest.mark.db, pytest.mark.goose]

CASES = {
    "comments": "-- +goose Up\n-- leading\n\nSELECT 1; -- trailing\nSELECT\n-- inner\n  2;\n\n-- +goose Down\nSELECT 0;\n",
    "glued-comment": "-- +goose Up\nSELECT 1;--glued\nSELECT 2;\n",
    "two-per-line": "-- +goose Up\nSELECT 1; SELECT 2;\nSELECT 3;\n",
    "block": "-- +goose Up\n-- +goose StatementBegin\nDO $$\nBEGIN\n  PERFORM 1;\nEND\n$$;\n-- +goose StatementEnd\n"
             "SELECT 2;\n",
    "crlf-and-tabs": "-- +goose Up\r\n\tSELECT 1;\r\n\r\nSELECT\t2 ;\r\n",
    "case-insensitive": "--+goose up\nSELECT 1;\n-- +GOOSE DOWN\nSELECT 2;\n",
    "empty-block-quirk": "-- +goose Up\n-- +goose StatementBegin\n-- +goose StatementEnd\nSELECT 1;\nSELECT 2;\n",
    "blank-lines-inside": "-- +goose Up\nSELECT\n\n   \n1;\n",
    "envsub": "-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${SG_GRAMMAR_A}', '${SG_GRAMMAR_B:-dflt}', '$$'${SG_GRAMMAR_END}\n"
              "-- +goose ENVSUB OFF\nSELECT '${SG_GRAMMAR_A}';\n",
    "no-transaction": "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 1;\n-- c\nSELECT 2;\n",
}
ENV = {"SG_GRAMMAR_A": "alpha", "SG_GRAMMAR_B": "", "SG_GRAMMAR_END": ";"}
_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", re.M)


def goose_statements(log: str) -> list[str]:
    """The statements in `goose -v` output, each up to the next log line."""
    entries = _LOG_PREFIX.split(log)
    return [e[len("Executing statement: "):].rstrip() for e in entries if e.startswith("Executing statement: ")]


def as_goose_logs(sql: str) -> str:
    """goose's clearStatement: comment lines and empty lines are dropped from what it logs."""
    sql = re.sub(r"(?m)^--.*$[\r\n]*", "", sql)
    return re.sub(r"(?m)^$[\r\n]*", "", sql).rstrip()


@pytest.mark.parametrize("case", sorted(CASES))
def test_statements_split_exactly_like_goose(case: str, goose_bin: str, database_url: str, tmp_path: Path) -> None:
    d = write_dir(tmp_path / case, {"00001_case.sql": CASES[case]})
    env = {**os.environ, **ENV}
    proc = subprocess.run([goose_bin, "-v", "-no-color", "-dir", str(d), "postgres", database_url, "up"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    ours = parse(CASES[case], "00001_case.sql", ENV)
    assert [as_goose_logs(s.sql) for s in ours.up] == goose_statements(proc.stdout + proc.stderr)
    assert ours.use_transaction == ("Begin transaction" in proc.stderr)
