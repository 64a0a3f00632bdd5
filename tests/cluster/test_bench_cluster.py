"""bench/operator_scale.py and bench/fleet.py still work end to end on the session's cluster, at tiny sizes. Times
are not asserted, only that each bench measured every object and reported what bench/README.md promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kube_fixtures import Kube

# Fixed release and namespace names and a cluster-wide FlowSchema, the same in both benches: one at a time.
# Beside other tests their figures carry those tests' load; none is asserted here (a measurement wants the node to itself: bench/operator_scale.py).
pytestmark = [pytest.mark.cluster, pytest.mark.serial("bench")]

REPO = Path(__file__).resolve().parents[2]


def _bench(kube: Kube, script: str, out: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig),
           "PATH": f"{Path(kube.kubectl_bin).parent}{os.pathsep}{Path(kube.helm_bin).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / script), "--image", kube.image, "--out", str(out),
                           "--settle", "1", *args], capture_output=True, text=True, timeout=900, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [result] = out.glob("*.json")
    return json.loads(result.read_text())


def test_operator_bench_times_every_object_and_the_idle_cost(kube: Kube, tmp_path: Path):
    r = _bench(kube, "operator_scale.py", tmp_path, "--namespaces", "2", "--per-namespace", "2", "--idle", "5",
               "--changes", "1")
    assert r["schemamigrations"] == 4
    assert r["rollout"]["apply_to_job_created_s"]["count"] == 4
    assert r["rollout"]["job_created_to_ready_s"]["count"] == 4
    assert r["rollout"]["api_requests"] > 0  # the bench's FlowSchema counts the operator's requests
    assert r["rollout"]["peak_rss_mib"] > 0 and r["idle"]["steady_rss_mib"] > 0
    assert {"cpu_percent_of_one_core", "api_requests_per_min", "db_sessions_per_min",
            "reconciles_per_min"} <= set(r["idle"])
    [change] = r["one_change_among_idle"]
    assert change["apply_to_job_created_s"] is not None and change["apply_to_ready_s"] is not None
    assert not r["watch_errors"]


def test_fleet_bench_rolls_a_small_set_to_ready(kube: Kube, tmp_path: Path):
    r = _bench(kube, "fleet.py", tmp_path, "--databases", "3", "--idle", "5")
    assert r["status"]["ready"] == 3 and r["status"]["lowestVersion"] == r["target"]
    assert r["job_seconds"]["count"] == 3
    assert r["idle"]["rss_mib"] > 0
