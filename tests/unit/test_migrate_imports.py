"""`schemagate migrate` starts as a Job on every rollout: it imports only what its verb needs.

Behaviour, not timing: which modules a fresh interpreter has loaded after the command ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

OPERATOR_ONLY = ("kubernetes", "kopf", "pydantic")  # the operator's, and the Lease's with --lease-name


def loaded_after(argv: list[str]) -> set[str]:
    code = ("import json, sys\nfrom schemagate import cli\n"
            "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.__stderr__)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60,
                          check=False)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_migrate_help_imports_neither_psycopg_nor_the_operator() -> None:
    loaded = loaded_after(["migrate", "--help"])
    assert not loaded & {"psycopg", *OPERATOR_ONLY}, sorted(loaded & {"psycopg", *OPERATOR_ONLY})


@pytest.mark.parametrize("verb", ["status", "up"])
def test_migrate_against_a_database_imports_psycopg_but_nothing_of_the_operator(verb: str, tmp_path: Path) -> None:
    (tmp_path / "00001_a.sql").write_text("-- +goose Up\nSELECT 1;\n")
    # Port 1 on loopback refuses at once: the whole path up to connecting runs, then it fails.
    loaded = loaded_after(["migrate", "--dir", str(tmp_path), "--database-url",
                           "postgresql://u:pw@127.0.0.1:1/x?connect_timeout=2", "--json", verb])
    assert "psycopg" in loaded
    assert not loaded & set(OPERATOR_ONLY), sorted(loaded & set(OPERATOR_ONLY))
