"""/metrics scraped over HTTP from the running operator pods: the leader's series say what happened (a
success, a failure, a held rollout); every name docs/operations.md lists is there; the standby says 0."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from kube_fixtures import wait_until
from migration_files import ORDERS_BROKEN as V2_BROKEN
from migration_files import USERS as V1

from test_rollout_gate import deployment, rolled_out_at_v1

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(operator, pod: dict) -> dict[str, float]:
    """'name{labels}' → value, as Prometheus would read it."""
    body = urllib.request.urlopen(operator.metrics_url(pod), timeout=10).read().decode()
    out = {}
    for line in body.splitlines():
        m = SAMPLE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def leader_pod(operator) -> dict:
    name = wait_until("a leader", operator.leader, timeout=60)
    return next(p for p in operator.pods() if p["metadata"]["name"] == name)


def series(samples: dict[str, float], metric: str, **labels: str) -> float | None:
    for key, value in samples.items():
        name, _, rest = key.partition("{")
        if name == metric and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return value
    return None


def test_metrics_after_a_success_a_failure_and_a_held_rollout(app, operator):
    ns = app.namespace
    rolled_out_at_v1(app)

    def after_success():
        s = scrape(operator, leader_pod(operator))
        ok = (series(s, "schemagate_migration_ready", namespace=ns, name="app") == 1
              and series(s, "schemagate_migration_jobs_succeeded_total", namespace=ns, name="app") == 1)
        return s if ok else None

    s = wait_until("metrics after the success", after_success, timeout=30)
    at_success = s
    assert series(s, "schemagate_migration_current_version", namespace=ns, name="app") == 1
    assert series(s, "schemagate_migration_pending", namespace=ns, name="app") == 0
    assert series(s, "schemagate_migration_jobs_started_total", namespace=ns, name="app") == 1
    assert series(s, "schemagate_migration_last_success_timestamp_seconds", namespace=ns, name="app") > 0
    assert series(s, "schemagate_leader") == 1

    app.migrations({**V1, **V2_BROKEN})
    app.apply(deployment(build="v2", required=2))
    app.wait_condition("Stalled", "True", "MigrationFailed", timeout=120)

    def after_failure():
        s = scrape(operator, leader_pod(operator))
        ok = (series(s, "schemagate_migration_jobs_failed_total", namespace=ns, name="app",
                     reason="MigrationFailed") == 1
              and (series(s, "schemagate_rollout_gate_held_pods", namespace=ns, deployment="config-server") or 0) >= 1)
        return s if ok else None

    s = wait_until("metrics after the failure, the rollout held", after_failure, timeout=60)
    assert series(s, "schemagate_migration_stalled", namespace=ns, name="app") == 1
    assert series(s, "schemagate_migration_ready", namespace=ns, name="app") == 0
    assert series(s, "schemagate_rollout_gate_oldest_held_seconds", namespace=ns, deployment="config-server") >= 0
    assert series(s, "schemagate_migration_job_duration_seconds_count", outcome="Failed") >= 1
    text = "\n".join(s)
    assert "no_such_table" not in text and "app-g" not in text  # no error texts, no Job names as labels

    documented = set(re.findall(r"^\| `(schemagate_[a-z_]+)`", DOCS.read_text(), re.M))
    # Over both scrapes: a replica that took over the lead in between counts from zero, and a labelled
    # counter has no series until it counts once.
    names = {k.partition("{")[0] for k in (*at_success, *s)}
    histograms = {n for n in documented if f"{n}_count" in names}
    assert documented - histograms <= names, documented - histograms - names

    standby = [p for p in operator.pods() if p["metadata"]["name"] != leader_pod(operator)["metadata"]["name"]]
    assert standby and series(scrape(operator, standby[0]), "schemagate_leader") == 0
