"""bench/run.py still works end to end (tiny sizes, one repetition, through toxiproxy at 0 and 1 ms). Times
are not asserted, only that every runner applied everything and the report has what the README promises."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.db, pytest.mark.goose]

REPO = Path(__file__).resolve().parents[2]
# bench/latency.py says where toxiproxy is expected; loaded by path so bench/ stays off sys.path.
_spec = importlib.util.spec_from_file_location("bench_latency", REPO / "bench" / "latency.py")
assert _spec and _spec.loader
latency = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(latency)


@pytest.fixture(scope="module")
def toxiproxy_bin() -> str:
    path = latency.default_toxiproxy()
    if not os.access(path, os.X_OK):
        pytest.fail(f"toxiproxy is not at {path}; run the tests through hack/test.sh, or build it with "
                    "hack/build-toxiproxy.sh and set TOXIPROXY_BIN to the path it prints")
    return path


def test_bench_runs_every_runner_at_every_latency_and_reports_ratios(goose_bin: str, toxiproxy_bin: str,
                                                                     tmp_path: Path) -> None:
    # N=50 has every shape: the config-server schema, ALTERs, tables with triggers, one CONCURRENTLY file.
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--sizes", "3,50", "--latencies", "0,1", "--repeat", "1",
         "--goose", goose_bin, "--toxiproxy", toxiproxy_bin,
         "--schemagate", str(Path(sys.executable).parent / "schemagate"), "--out", str(tmp_path), "--timeout", "120"],
        capture_output=True, text=True, timeout=600, check=False, env=os.environ.copy())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = tmp_path.glob("*.json")
    result = json.loads(result_file.read_text())
    measured = {(m["tool"], m["size"], m["latency"], m["op"]) for m in result["medians"]}
    ops = {("schemagate", "up"), ("schemagate", "status"), ("schemagate", "start"), ("goose", "up"),
           ("goose", "status"), ("goose", "start"), ("psql", "up"), ("psql", "start")}
    assert measured == {(t, n, lat, op) for t, op in ops for n in (3, 50) for lat in ("0ms", "1ms")}
    assert {(r["denominator"], r["latency"], r["op"]) for r in result["ratios"]} == {
        (b, lat, op) for b, op in (("goose", "up"), ("goose", "status"), ("psql", "up")) for lat in ("0ms", "1ms")}
    assert result["environment"]["toxiproxy"] == latency.TOXIPROXY_VERSION
    assert "schemagate/goose" in proc.stdout and "schemagate/psql" in proc.stdout and "1ms" in proc.stdout


def test_bench_without_toxiproxy_says_how_to_get_it(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--sizes", "3", "--repeat", "1", "--tools", "psql",
         "--toxiproxy", str(tmp_path / "nowhere"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and "hack/build-toxiproxy.sh" in proc.stderr, proc.stderr
