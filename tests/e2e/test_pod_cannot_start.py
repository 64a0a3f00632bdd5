"""A migration Job whose pod cannot start, on the real node: status says why while the Job waits, the
phase stays Migrating (Reconciling=True, not Stalled: the Job controller and the kubelet keep retrying),
one Warning `PodCannotStart` is posted per cause, and fixing the cause lets the run go on (issue 16).

The first cause, a spec.job.env Secret that does not exist (CreateContainerConfigError), is in
tests/e2e/test_job_env.py. Here: a ServiceAccount the operator allows that the namespace does not have
(the Job controller's FailedCreate: no pod at all), an image that is not on the node (the kubelet's
ErrImagePull / ImagePullBackOff, or ErrImageNeverPull under imagePullPolicy Never), a nodeSelector no node
matches (the scheduler's Unschedulable), and a Job that reaches its deadline that way.

Written without a cluster to run it on (the node was in use): collected, not yet run.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from kube_fixtures import wait_until
from operator_fixtures import ALLOWED_SERVICE_ACCOUNTS, NEVER_BUILT_IMAGE

pytestmark = pytest.mark.e2e

FILES = {"00001_users.sql": "-- +goose Up\nCREATE TABLE users (id bigint PRIMARY KEY);\n"
                            "-- +goose Down\nDROP TABLE users;\n",
         "00002_orders.sql": "-- +goose Up\nCREATE TABLE orders (id bigint PRIMARY KEY);\n"
                             "-- +goose Down\nDROP TABLE orders;\n"}
# Allowed by the chart the tests install (jobs.allowedServiceAccounts), so neither the admission policy nor
# the operator refuses it; no namespace of the pool has it until a test creates it.
ACCOUNT = ALLOWED_SERVICE_ACCOUNTS[0]
# Long enough never to end a test that recovers; ended only where a test sets a short one.
DEADLINE = 900
PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull")


def _cannot_start(app, *causes: str) -> dict[str, Any]:
    """The Reconciling condition once its message says the pod cannot start for one of `causes`."""
    def stuck() -> dict[str, Any] | None:
        c = app.condition("Reconciling")
        message = c.get("message", "")
        return c if any(f"its pod cannot start: {cause}" in message for cause in causes) else None

    return app.wait_for("app", f"Migrating, its pod cannot start ({' or '.join(causes)})", stuck, timeout=180)


def _still_migrating(app) -> None:
    status = app.status()
    conds = {c["type"]: c for c in status.get("conditions") or []}
    assert status["phase"] == "Migrating", status
    assert (conds["Reconciling"]["status"], conds["Reconciling"]["reason"]) == ("True", "Migrating"), conds
    assert conds["Stalled"]["status"] == "False" and conds["Ready"]["status"] == "False", conds


def _warnings(app) -> list[str]:
    out = app.kubectl("get", "events", "--field-selector",
                      "involvedObject.kind=SchemaMigration,involvedObject.name=app,reason=PodCannotStart",
                      "-o", "json").stdout
    return [e["message"] for e in json.loads(out)["items"]]


def _one_warning(app, *words: str) -> None:
    """Exactly one PodCannotStart Warning, naming `words`, after several resyncs (1 s each) saw the same
    cause: posted once, not at every reconcile."""
    wait_until("the PodCannotStart Warning", lambda: _warnings(app), timeout=30)
    time.sleep(8)
    (message,) = _warnings(app)
    for w in words:
        assert w in message, message


def _migration_account(app) -> None:
    """The ServiceAccount with the one grant a migration Job needs (examples/config-server-schemamigration.yaml)."""
    app.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT}},
              {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": ACCOUNT},
               "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                          "verbs": ["get", "create", "update"]}]},
              {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": ACCOUNT},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCOUNT},
               "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT}]})


def _pods(app, job: str) -> list[dict[str, Any]]:
    return json.loads(app.kubectl("get", "pods", "-l", f"job-name={job}", "-o", "json").stdout)["items"]


def test_a_missing_service_account_is_named_then_creating_it_lets_the_same_job_run(app):
    app.secret(app.database_url)
    app.migrations(FILES)
    app.schemamigration(job={"serviceAccountName": ACCOUNT, "activeDeadlineSeconds": DEADLINE})

    cond = _cannot_start(app, "FailedCreate")
    assert f'serviceaccount "{ACCOUNT}" not found' in cond["message"], cond
    _still_migrating(app)
    (job,) = app.jobs()
    assert _pods(app, job["metadata"]["name"]) == []  # the apiserver refused every pod the Job controller tried
    _one_warning(app, "FailedCreate", f'serviceaccount "{ACCOUNT}" not found')
    assert app.db_versions() == []

    _migration_account(app)
    # The Job controller retries pod creation with a back-off of up to a minute.
    app.wait_ready(2, timeout=300)
    assert [j["metadata"]["name"] for j in app.jobs()] == [job["metadata"]["name"]]  # the same Job ran
    assert app.db_versions() == [1, 2]
    assert "cannot start" not in app.condition("Ready").get("message", "")


def test_an_image_not_on_the_node_is_named_and_a_fixed_spec_runs_once_the_stuck_job_is_deleted(app):
    """The image is allowed (tests/operator_fixtures.py) and never built: the kubelet cannot pull it (the
    Job leaves imagePullPolicy to its default, IfNotPresent for a tagged reference; there is no registry
    at localhost). A new generation does not start a Job while an older one of its own is active, so the
    documented fix is the spec, then `kubectl delete job` of the stuck one (or waiting for its deadline)."""
    app.secret(app.database_url)
    app.migrations(FILES)
    app.schemamigration(job={"image": NEVER_BUILT_IMAGE, "activeDeadlineSeconds": DEADLINE})

    cond = _cannot_start(app, *PULL_REASONS)
    assert NEVER_BUILT_IMAGE in cond["message"], cond
    _still_migrating(app)
    # ErrImagePull and ImagePullBackOff alternate while the kubelet backs off: one cause, one Warning.
    _one_warning(app, NEVER_BUILT_IMAGE)
    (stuck,) = app.jobs()
    assert app.db_versions() == []

    app.schemamigration(job={"activeDeadlineSeconds": DEADLINE})  # the default runner image
    wait_until("the new generation observed", lambda: app.status().get("observedGeneration") == 2, timeout=60)
    cond = app.condition("Reconciling")  # still the stuck Job's words
    assert f"Job {stuck['metadata']['name']} is migrating" in cond["message"] and "cannot start" in cond["message"]
    app.kubectl("delete", "job", stuck["metadata"]["name"], "--wait=true", timeout=120)
    app.wait_ready(2, timeout=180)
    (ran,) = app.jobs()
    assert ran["metadata"]["name"] != stuck["metadata"]["name"]
    assert app.db_versions() == [1, 2]


def test_a_node_selector_no_node_matches_is_named_and_removing_it_recovers(app):
    app.secret(app.database_url)
    app.migrations(FILES)
    app.schemamigration(job={"nodeSelector": {"schemagate.io/e2e-no-such-node": "true"},
                             "activeDeadlineSeconds": DEADLINE})

    cond = _cannot_start(app, "Unschedulable")
    assert "0/" in cond["message"] and "nodes are available" in cond["message"], cond
    _still_migrating(app)
    _one_warning(app, "Unschedulable")
    (stuck,) = app.jobs()

    app.schemamigration(job={"activeDeadlineSeconds": DEADLINE})
    wait_until("the new generation observed", lambda: app.status().get("observedGeneration") == 2, timeout=60)
    app.kubectl("delete", "job", stuck["metadata"]["name"], "--wait=true", timeout=120)
    app.wait_ready(2, timeout=180)
    assert app.db_versions() == [1, 2]


def test_a_job_whose_pod_never_started_says_so_when_its_deadline_ends_it(app):
    """Past spec.job.activeDeadlineSeconds the Job controller fails the Job (DeadlineExceeded) and no pod
    is left to ask: the Stalled message keeps what status last said held it."""
    app.secret(app.database_url)
    app.migrations(FILES)
    app.schemamigration(job={"serviceAccountName": ACCOUNT, "activeDeadlineSeconds": 30})

    _cannot_start(app, "FailedCreate")
    stalled = app.wait_condition("Stalled", "True", "JobFailed", timeout=180)
    assert "DeadlineExceeded" in stalled["message"], stalled
    assert "when last seen, its pod could not start: FailedCreate" in stalled["message"], stalled
    assert f'serviceaccount "{ACCOUNT}" not found' in stalled["message"], stalled
    last = app.last_job()
    assert last["outcome"] == "Failed" and "could not start" in last["message"], last
    assert app.db_versions() == []
    # Create what was missing; a new generation (here a longer deadline; else the schemagate.io/retry
    # annotation) runs a new Job.
    _migration_account(app)
    app.schemamigration(job={"serviceAccountName": ACCOUNT, "activeDeadlineSeconds": DEADLINE})
    app.wait_ready(2, timeout=180)
    assert app.db_versions() == [1, 2]
