"""bench/run.py still works end to end (N=3, one repetition). Times are not asserted, only that every
runner applied everything and the report has what the README promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.db, pytest.mark.goose]

REPO = Path(__file__).resolve().parents[2]


def test_bench_runs_every_runner_and_reports_ratios(goose_bin: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--sizes", "3", "--repeat", "1",
         "--goose", goose_bin, "--schemagate", str(Path(sys.executable).parent / "schemagate"),
         "--out", str(tmp_path), "--timeout", "120"],
        capture_output=True, text=True, timeout=300, check=False, env=os.environ.copy())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = tmp_path.glob("*.json")
    result = json.loads(result_file.read_text())
    measured = {(m["tool"], m["op"]) for m in result["medians"]}
    assert measured == {("schemagate", "up"), ("schemagate", "status"), ("schemagate", "start"),
                        ("goose", "up"), ("goose", "status"), ("goose", "start"), ("psql", "up"), ("psql", "start")}
    assert {(r["denominator"], r["op"]) for r in result["ratios"]} == {("goose", "up"), ("goose", "status"),
                                                                        ("psql", "up")}
    assert "schemagate/goose" in proc.stdout and "schemagate/psql" in proc.stdout
