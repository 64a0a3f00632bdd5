"""Both charts installed into the real node's cluster, the operator running AS A POD of our image (built
from the Dockerfile) with the chart's ServiceAccount token, not admin:

- the example reaches Ready, so the chart's RBAC is enough, and the operator cannot read what it need not;
- operator, migration and app pods are admitted in namespaces enforcing the `restricted` Pod Security
  Standard (and a non-compliant pod is not: the label really is enforced);
- the database password shows nowhere: operator and Job logs, Events, status, Job specs, Helm's record.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from typing import Any, Iterator

import pytest

from chart_support import CHARTS
from kube_fixtures import Kube, wait_until

pytestmark = pytest.mark.e2e

SMIG = "cs-config-server"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


def restricted_namespace(kube: Kube, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    kube.kubectl("label", "namespace", name, RESTRICTED, "pod-security.kubernetes.io/enforce-version=latest")
    wait_until(f"ServiceAccount default in {name}",
               lambda: kube.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0, timeout=30)
    return name


@pytest.fixture
def namespaces(kube: Kube) -> Iterator[tuple[str, str]]:
    """(operator namespace, app namespace), both enforcing `restricted`."""
    ops, app = restricted_namespace(kube, "ops"), restricted_namespace(kube, "app")
    yield ops, app
    for ns in (app, ops):
        for release in kube.helm("list", "-n", ns, "-q", check=False).stdout.split():
            kube.helm("uninstall", release, "-n", ns, "--wait", check=False)
    kube.kubectl("delete", "namespace", ops, app, "--wait=false", check=False)


def get_json(kube: Kube, *args: str) -> Any:
    return json.loads(kube.kubectl(*args, "-o", "json").stdout)


def can_i(kube: Kube, who: str, *args: str) -> bool:
    proc = kube.kubectl("auth", "can-i", *args, f"--as={who}", check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i {' '.join(args)}: {proc.stdout} {proc.stderr}"
    return answer == "yes"


# A refusal as kopf, the client and the controller word it: "... is forbidden", "status=403", "(403)",
# "'code': 403"; not 403 inside a namespace name (app-7403e9aa) or a duration (0.403 s).
REFUSED = re.compile(r"forbidden|(?<![\w.])403(?![\w.])", re.IGNORECASE)


def refusals(log: str) -> list[str]:
    """The operator's log lines whose message says a request was refused. Only the message is searched: a
    line's timestamp (16:44:40.403Z) is not a status code."""
    def message(line: str) -> str:
        try:
            return str(json.loads(line)["message"])
        except (ValueError, KeyError, TypeError):  # not one of the operator's JSON records: all of it
            return line

    return [line for line in log.splitlines() if REFUSED.search(message(line))]


def wait_ready(kube: Kube, namespace: str, operator_log: Any) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = get_json(kube, "-n", namespace, "get", "smig", SMIG).get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
        return status if (ready.get("status"), status.get("currentVersion")) == ("True", 1) else None

    try:
        return wait_until(f"{namespace}/{SMIG} Ready at version 1", probe, timeout=120)
    except pytest.fail.Exception:
        print("--- operator log:\n" + operator_log()[-4000:])
        raise


@pytest.mark.parametrize("secrets", ["namespace", "none"])
def test_operator_pod_with_the_charts_rbac_takes_the_app_chart_to_ready(kube: Kube, namespaces: tuple[str, str],
                                                                       database_url: str, secrets: str):
    if not kube.local:
        pytest.fail("this test runs on the local node, with its images (no SCHEMAGATE_E2E_KUBECONFIG)")
    from devenv.postgres import free_port

    ops, app = namespaces
    # A release name of its own: its admission policies are cluster-scoped objects named after it, and the
    # other parameter may be installing beside it (tests/shared_cluster.py).
    sg = f"sg-{secrets}"
    password = urllib.parse.urlsplit(database_url).password
    assert password
    # The database by a Service name, resolved by CoreDNS in the operator's and the Job's pods.
    by_name = kube.database_service(app, database_url)
    kube.kubectl("-n", app, "create", "secret", "generic", "config-server-db", f"--from-literal=url={by_name}")
    kube.kubectl("-n", app, "create", "secret", "generic", "unrelated", "--from-literal=token=not-yours")

    kube.helm("install", sg, str(CHARTS / "schemagate"), "-n", ops, "--wait", "--timeout=120s",
              "--set", f"watch.namespaces={{{app}}}", "--set", f"image.repository={kube.image.rsplit(':', 1)[0]}",
              "--set", f"operator.healthPort={free_port()}", "--set", "operator.resyncSeconds=1",
              "--set", f"rbac.secrets={secrets}")
    app_values = ["--set", "operatorAccess.enabled=true", "--set", f"operatorAccess.serviceAccount={sg}-schemagate",
                  "--set", f"operatorAccess.namespace={ops}"] if secrets == "none" else []
    kube.helm("install", "cs", str(CHARTS / "config-server"), "-n", app, *app_values,
              "--set", "image.repository=localhost/config-server")

    # The chart's two replicas: one leads, the other stands by; both run with the chart's token.
    op_pods = get_json(kube, "-n", ops, "get", "pods", "-l", f"app.kubernetes.io/instance={sg}")["items"]
    assert len(op_pods) == 2
    assert {p["spec"]["serviceAccountName"] for p in op_pods} == {f"{sg}-schemagate"}

    def operator_log() -> str:
        return "".join(kube.logs(ops, p["metadata"]["name"]) for p in op_pods)

    status = wait_ready(kube, app, operator_log)
    assert status["phase"] == "Ready"
    # The leader, with the chart's token, created the Job (only the creator reports it started),
    # and nothing it tried was refused (kopf and the controller log every 403 they meet).
    log = operator_log()
    assert f"{app}/{SMIG}: MigrationStarted" in log
    refused = refusals(log)
    assert not refused, "\n".join(refused)

    # The Job ran as the migration ServiceAccount, in the restricted namespace.
    [job] = get_json(kube, "-n", app, "get", "jobs", "-l", f"schemagate.io/migration={SMIG}")["items"]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "schemagate-migration"
    def job_pods_done() -> list[dict[str, Any]] | None:
        pods = get_json(kube, "-n", app, "get", "pods", "-l", f"job-name={job['metadata']['name']}")["items"]
        return pods if [p["status"].get("phase") for p in pods] == ["Succeeded"] else None

    # The database can be Ready a moment before the pod's phase is reported.
    job_pods = wait_until("the migration pod Succeeded", job_pods_done, timeout=60)
    # The app's pods were admitted too; they carry the gate and the version they need.
    app_pods = wait_until("config-server pods", lambda: get_json(
        kube, "-n", app, "get", "pods", "-l", "app.kubernetes.io/instance=cs")["items"], timeout=60)
    for pod in app_pods:
        assert pod["spec"]["readinessGates"] == [{"conditionType": "schemagate.io/schema-ready"}]
        assert pod["metadata"]["annotations"]["schemagate.io/required-schema-version"] == "1"
    # With the schema there, the operator (same token) opens the gate: the rollout completes.
    kube.kubectl("-n", app, "rollout", "status", "deployment/cs-config-server", "--timeout=60s", timeout=90)
    for pod in get_json(kube, "-n", app, "get", "pods", "-l", "app.kubernetes.io/instance=cs")["items"]:
        gate = next(c for c in pod["status"]["conditions"] if c["type"] == "schemagate.io/schema-ready")
        assert gate["status"] == "True", pod["metadata"]["name"]
    for ns in (ops, app):
        labels = get_json(kube, "get", "namespace", ns)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    # The label is enforced: a pod without the restricted settings is refused in the same namespaces.
    for ns in (ops, app):
        proc = kube.kubectl("-n", ns, "run", "not-restricted", "--image=busybox:1.36", "--restart=Never",
                            "--", "true", check=False)
        assert proc.returncode != 0 and 'violates PodSecurity "restricted:latest"' in proc.stderr, proc.stderr

    # What the operator may and may not do, as the API server's authorizer answers for its token.
    operator = f"system:serviceaccount:{ops}:{sg}-schemagate"
    assert can_i(kube, operator, "get", "secret/config-server-db", "-n", app)
    assert can_i(kube, operator, "get", "secret/unrelated", "-n", app) is (secrets == "namespace")
    for verb in ("list", "watch", "create", "update", "delete"):
        assert not can_i(kube, operator, verb, "secrets", "-n", app), verb
    for ns in (ops, "default", "kube-system"):
        assert not can_i(kube, operator, "get", "secrets", "-n", ns), ns
        assert not can_i(kube, operator, "list", "schemamigrations.schemagate.io", "-n", ns), ns
    assert not can_i(kube, operator, "create", "pods", "-n", app)
    assert not can_i(kube, operator, "delete", "jobs", "-n", app)
    assert not can_i(kube, operator, "list", "schemamigrations.schemagate.io", "--all-namespaces")
    migration = f"system:serviceaccount:{app}:schemagate-migration"
    for verb in ("get", "create", "update"):
        assert can_i(kube, migration, verb, "leases.coordination.k8s.io", "-n", app)
    assert not can_i(kube, migration, "delete", "leases.coordination.k8s.io", "-n", app)
    assert not can_i(kube, migration, "get", "secrets", "-n", app)
    assert not can_i(kube, migration, "get", "configmaps", "-n", app)

    # The password: nowhere but in the Secret.
    wait_until("the run recorded in status", lambda: (get_json(kube, "-n", app, "get", "smig", SMIG)
                                                      .get("status") or {}).get("lastJob"))
    seen = {
        "operator log": operator_log(),
        "job logs": "".join(kube.logs(app, p["metadata"]["name"]) for p in job_pods),
        "status, Jobs and pods": kube.kubectl("-n", app, "get", "smig,jobs,pods", "-o", "yaml").stdout,
        "events": kube.kubectl("get", "events", "-A", "-o", "yaml").stdout,
        "Helm's records": kube.helm("get", "all", "cs", "-n", app).stdout + kube.helm("get", "all", sg, "-n", ops).stdout,
    }
    assert "Forbidden" not in seen["operator log"], seen["operator log"][-4000:]  # the gate's work too
    for where, text in seen.items():
        assert text, f"{where}: nothing to look at"
        assert password not in text, f"the database password shows in {where}"
