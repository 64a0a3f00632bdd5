"""What a new user does: the README's example manifest on the local single-node cluster."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from kube_fixtures import wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def test_example_manifest_reaches_ready_and_keeps_the_password_out_of_sight(app, operator):
    app.kubectl("create", "configmap", "config-server-migrations", f"--from-file={REPO / 'migrations'}")
    docs = list(yaml.safe_load_all((REPO / "examples" / "config-server-schemamigration.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["stringData"]["url"] = app.database_url
    app.apply(*docs)

    status = app.wait_ready(1, name="config-server")
    row = app.kubectl("get", "schemamigrations", "--no-headers").stdout.split()
    assert row[:5] == ["config-server", "1", "1", "Ready", "True"]
    assert app.table_exists("bootstrap_tokens")
    (job,) = app.jobs("config-server")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "config-server-migrator"
    app.last_job("config-server")

    password = urllib.parse.urlsplit(app.database_url).password
    assert password
    seen = {
        "status and Job specs": app.kubectl("get", "smig,jobs,pods", "-o", "yaml").stdout,
        "events": app.kubectl("get", "events", "-o", "yaml").stdout,
        "operator log": operator.logs(),
    }
    seen["job logs"] = "".join(app.kube.logs(app.namespace, p["metadata"]["name"]) for p in json.loads(
        app.kubectl("get", "pods", "-o", "json").stdout)["items"])
    for where, text in seen.items():
        assert password not in text, f"the database password shows in {where}"
    assert status["phase"] == "Ready"


def test_operator_liveness_endpoint_answers(operator):
    def alive() -> bool:
        try:
            with urllib.request.urlopen(operator.liveness, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_until("the operator's liveness endpoint", alive, timeout=30)
