"""The test harness itself, against the real control plane and the local pod runner (issue 3, item 4).

Everything goes through the real kubectl, the way a person would check a cluster.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_fixtures import Kube, processes_with, wait_until

pytestmark = pytest.mark.cluster


def apply(kube: Kube, namespace: str, *docs: dict[str, Any], check: bool = True):
    return kube.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(docs), check=check)


def get(kube: Kube, namespace: str, *what: str, selector: str | None = None) -> dict[str, Any]:
    args = ["-n", namespace, "get", *what, "-o", "json"]
    if selector:
        args += ["-l", selector]
    return json.loads(kube.kubectl(*args).stdout)


def job(name: str, command: list[str], *, backoff: int = 0, image: str = "busybox:1.36",
        restart: str = "Never", **pod_spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": image, "command": command, **pod_spec.pop("container", {})}
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": backoff, "template": {"spec": {
            "restartPolicy": restart, "containers": [container], **pod_spec}}},
    }


def job_pods(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    return get(kube, namespace, "pods", selector=f"batch.kubernetes.io/job-name={name}")["items"]


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


def test_job_whose_pod_exits_0_completes_with_its_termination_message(kube: Kube, namespace: str):
    # The termination-message path is a whole argument, so the path convention maps it.
    apply(kube, namespace, job("ok", ["sh", "-c", 'echo "all done"; echo "$1" > "$2"', "sh",
                                      "schema at 42", "/dev/termination-log"]))
    kube.kubectl("-n", namespace, "wait", "--for=condition=complete", "job/ok", "--timeout=60s")
    [pod] = job_pods(kube, namespace, "ok")
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    assert terminated["message"] == "schema at 42\n"
    assert "all done" in kube.logs(namespace, pod["metadata"]["name"])


def test_job_exiting_1_with_backoff_limit_1_fails_after_two_pods(kube: Kube, namespace: str):
    apply(kube, namespace, job("bad", ["sh", "-c", "echo boom >&2; exit 1"], backoff=1,
                               container={"terminationMessagePolicy": "FallbackToLogsOnError"}))
    kube.kubectl("-n", namespace, "wait", "--for=condition=failed", "job/bad", "--timeout=90s")
    pods = job_pods(kube, namespace, "bad")
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 1
        assert terminated["message"] == "boom\n"  # FallbackToLogsOnError: the log tail
    jobobj = get(kube, namespace, "job/bad")
    assert condition(jobobj, "Failed")["reason"] == "BackoffLimitExceeded"


def test_deployment_with_readiness_gate_is_unavailable_until_the_gate_is_true(kube: Kube, namespace: str):
    gate = "schemagate.io/schema-ready"
    apply(kube, namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": "app"}},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": {"app": "app"}}, "spec": {
                "readinessGates": [{"conditionType": gate}],
                "containers": [{"name": "web", "image": "nginx:1.27"}]}},
        },
    })

    def running_pod() -> dict[str, Any] | None:
        pods = get(kube, namespace, "pods", selector="app=app")["items"]
        ready = [p for p in pods if (condition(p, "ContainersReady") or {}).get("status") == "True"]
        return ready[0] if ready else None

    pod = wait_until("the app pod's containers to be ready", running_pod)
    assert pod["status"]["phase"] == "Running"
    ready = condition(pod, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady"
    deploy = get(kube, namespace, "deployment/app")
    assert not deploy["status"].get("availableReplicas")
    assert (condition(deploy, "Available") or {}).get("status") != "True"

    name = pod["metadata"]["name"]
    kube.kubectl("-n", namespace, "patch", "pod", name, "--subresource=status", "--type=strategic", "-p",
                 json.dumps({"status": {"conditions": [{"type": gate, "status": "True", "reason": "Test"}]}}))
    kube.kubectl("-n", namespace, "wait", "--for=condition=Available", "deployment/app", "--timeout=60s")
    pod = get(kube, namespace, f"pod/{name}")
    assert condition(pod, "Ready")["status"] == "True"
    assert condition(pod, gate)["status"] == "True"  # the runner's patches kept our condition

    # A careless JSON merge patch replaces the whole list; the runner writes its conditions again.
    kube.kubectl("-n", namespace, "patch", "pod", name, "--subresource=status", "--type=merge", "-p",
                 json.dumps({"status": {"conditions": [{"type": gate, "status": "True", "reason": "Test"}]}}))
    wait_until("Ready=True restored by the runner",
               lambda: (condition(get(kube, namespace, f"pod/{name}"), "Ready") or {}).get("status") == "True")

    # And back: the gate turning False makes the pod unready again.
    kube.kubectl("-n", namespace, "patch", "pod", name, "--subresource=status", "--type=strategic", "-p",
                 json.dumps({"status": {"conditions": [{"type": gate, "status": "False", "reason": "Test"}]}}))
    wait_until("Ready=False after the gate went False",
               lambda: condition(get(kube, namespace, f"pod/{name}"), "Ready")["status"] == "False")


def test_privileged_pod_is_rejected_in_a_restricted_namespace(kube: Kube, namespace: str):
    kube.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")

    def pod(name: str, security: dict[str, Any], pod_security: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"securityContext": pod_security, "containers": [
                    {"name": "c", "image": "busybox:1.36", "command": ["true"], "securityContext": security}]}}

    rejected = apply(kube, namespace, pod("priv", {"privileged": True}, {}), check=False)
    assert rejected.returncode != 0
    assert "violates PodSecurity" in rejected.stderr and "privileged" in rejected.stderr

    compliant = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    apply(kube, namespace, pod("ok", compliant,
                               {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}))


RBAC_PROBE = textwrap.dedent("""
    import sys
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    config.load_config()
    v1 = client.CoreV1Api()
    ns = sys.argv[1]
    for what, call in [("configmaps", lambda: v1.list_namespaced_config_map(ns)),
                       ("secrets", lambda: v1.list_namespaced_secret(ns)),
                       ("other-namespace-configmaps", lambda: v1.list_namespaced_config_map("default"))]:
        try:
            call()
            print(what, "allowed")
        except ApiException as exc:
            print(what, exc.status)
""")


def test_pod_process_has_exactly_its_service_account_rbac(kube: Kube, namespace: str):
    apply(kube, namespace,
          {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
          {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
           "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]},
          {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
           "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]},
          job("probe", ["python", "-c", RBAC_PROBE, namespace], image="python:3.11", serviceAccountName="reader"))
    kube.kubectl("-n", namespace, "wait", "--for=condition=complete", "job/probe", "--timeout=60s")
    [pod] = job_pods(kube, namespace, "probe")
    out = kube.logs(namespace, pod["metadata"]["name"])
    assert "configmaps allowed" in out
    assert "secrets 403" in out
    assert "other-namespace-configmaps 403" in out


def test_env_volumes_and_path_convention(kube: Kube, namespace: str):
    """secretKeyRef/configMapKeyRef/fieldRef env, ConfigMap (items) and Secret volumes, mount paths
    rewritten in args and env; a missing Secret holds the container in CreateContainerConfigError."""
    script = ('cat "$1"/first.sql; cat "$SECRET_FILE"; echo "pod=$POD ns=$NS mode=$MODE"; '
              '[ -z "$MISSING" ] && [ "$PASSWORD" = s3cret ]')
    spec = job("env", ["sh", "-c", script, "sh", "/migrations"], container={
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}}},
            {"name": "SECRET_FILE", "value": "/etc/db/url"},
        ],
        "volumeMounts": [{"name": "sql", "mountPath": "/migrations"},
                         {"name": "db", "mountPath": "/etc/db", "readOnly": True}],
    }, volumes=[
        {"name": "sql", "configMap": {"name": "sql", "items": [{"key": "001_init.sql", "path": "first.sql"}]}},
        {"name": "db", "secret": {"secretName": "dbfile"}},
    ])
    apply(kube, namespace,
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}},
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "dbfile"},
           "stringData": {"url": "postgresql://app@db/app\n"}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sql"},
           "data": {"001_init.sql": "-- +goose Up\nCREATE TABLE t (id int);\n", "other.sql": "nope"}},
          spec)

    def waiting_reason() -> bool | None:
        pods = job_pods(kube, namespace, "env")
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        return statuses and statuses[0]["state"].get("waiting", {}).get("reason") == "CreateContainerConfigError"

    wait_until("CreateContainerConfigError for the missing Secret", waiting_reason)
    apply(kube, namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                            "stringData": {"password": "s3cret"}})
    kube.kubectl("-n", namespace, "wait", "--for=condition=complete", "job/env", "--timeout=60s")
    [pod] = job_pods(kube, namespace, "env")
    out = kube.logs(namespace, pod["metadata"]["name"])
    assert "CREATE TABLE t (id int);" in out and "nope" not in out
    assert "postgresql://app@db/app" in out
    assert f"pod={pod['metadata']['name']} ns={namespace} mode=fast" in out


def test_namespace_deletion_completes_and_kills_pod_processes(kube: Kube):
    name = f"t-del-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    wait_until("default ServiceAccount", lambda: kube.kubectl("-n", name, "get", "sa", "default",
                                                             check=False).returncode == 0)
    marker = f"schemagate-sleeper-{uuid.uuid4().hex[:8]}"
    apply(kube, name, job("sleeper", ["sh", "-c", "sleep 300; echo never", marker]),
          {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "app"}},
                    "template": {"metadata": {"labels": {"app": "app"}},
                                 "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
    kube.kubectl("-n", name, "wait", "--for=condition=Available", "deployment/app", "--timeout=60s")
    if kube.local:
        wait_until("the sleeper process", lambda: processes_with(marker))
    kube.kubectl("delete", "namespace", name, "--timeout=90s")
    gone = kube.kubectl("get", "namespace", name, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    if kube.local:
        assert processes_with(marker) == []


def test_mapped_image_runs_this_repository_cli(kube: Kube, namespace: str):
    """A pod of our image without a command runs the image's entrypoint, `schemagate`, from this
    repository's .venv (the default image mapping)."""
    if not kube.local:
        pytest.fail("needs the local pod runner (this test is about its image mapping)")
    spec = job("cli", [], image="ghcr.io/example/schemagate:0.1.0")
    container = spec["spec"]["template"]["spec"]["containers"][0]
    del container["command"]
    container["args"] = ["--help"]
    apply(kube, namespace, spec)
    kube.kubectl("-n", namespace, "wait", "--for=condition=complete", "job/cli", "--timeout=60s")
    [pod] = job_pods(kube, namespace, "cli")
    out = kube.logs(namespace, pod["metadata"]["name"])
    assert "migrate" in out


def test_kubectl_logs_reads_the_pod_runner_output(kube: Kube, namespace: str):
    apply(kube, namespace, job("talk", ["sh", "-c", "echo line-one; echo line-two >&2"]))
    kube.kubectl("-n", namespace, "wait", "--for=condition=complete", "job/talk", "--timeout=60s")
    out = kube.kubectl("-n", namespace, "logs", "job/talk").stdout
    assert "line-one" in out and "line-two" in out
    assert kube.kubectl("-n", namespace, "logs", "job/talk", "--tail=1").stdout == "line-two\n"


def test_helm_installs_a_chart_into_the_cluster(kube: Kube, namespace: str, tmp_path: Path):
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\nkubeVersion: '>=1.34.0-0'\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tiny}\ndata: {greeting: {{ .Values.greeting | quote }}}\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    kube.helm("install", "tiny", str(chart), "-n", namespace, "--set", "greeting=hi", "--wait")
    assert get(kube, namespace, "configmap/tiny")["data"] == {"greeting": "hi"}


def test_init_containers_run_first_and_on_failure_restarts_in_place(kube: Kube, namespace: str):
    """The init container prepares an emptyDir; the main container fails once, is restarted in the same
    pod (restartPolicy OnFailure, restartCount 1) and then succeeds."""
    flaky = 'cat "$1"/greeting; if [ ! -e "$1"/tried ]; then touch "$1"/tried; exit 3; fi'
    spec = job("flaky", ["sh", "-c", flaky, "sh", "/work"], restart="OnFailure", backoff=2,
               container={"volumeMounts": [{"name": "work", "mountPath": "/work"}]},
               initContainers=[{"name": "prepare", "image": "busybox:1.36",
                                "command": ["sh", "-c", 'echo prepared > "$0"/greeting', "/work"],
                                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
               volumes=[{"name": "work", "emptyDir": {}}])
    apply(kube, namespace, spec)
    kube.kubectl("-n", namespace, "wait", "--for=condition=complete", "job/flaky", "--timeout=60s")
    [pod] = job_pods(kube, namespace, "flaky")
    assert pod["status"]["phase"] == "Succeeded"
    [init] = pod["status"]["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 0
    [main] = pod["status"]["containerStatuses"]
    assert main["restartCount"] == 1
    assert main["lastState"]["terminated"]["exitCode"] == 3
    assert main["state"]["terminated"]["exitCode"] == 0
    assert kube.logs(namespace, pod["metadata"]["name"], "main").count("prepared") == 2
