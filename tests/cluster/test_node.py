"""The dev cluster's node is a real one: kubelet, containerd, runc, CNI, kube-proxy, CoreDNS, our image.

Everything goes through the real kubectl, the way a person would check a cluster. What the operator
relies on — termination messages, logs, readiness gates, Pod Security enforcement, in-cluster API
access with a ServiceAccount's RBAC, Service names — is checked against the kubelet itself.
"""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_fixtures import Kube, processes_with, wait_until

pytestmark = pytest.mark.cluster
IMAGE = Kube.image  # ours, built from the Dockerfile: Debian bookworm with sh, python3 and schemagate
SLEEP = ["sleep", "infinity"]


def apply(kube: Kube, namespace: str, *docs: dict[str, Any], check: bool = True):
    return kube.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(docs), check=check)


def get(kube: Kube, namespace: str, *what: str, selector: str | None = None) -> dict[str, Any]:
    args = ["-n", namespace, "get", *what, "-o", "json"]
    if selector:
        args += ["-l", selector]
    return json.loads(kube.kubectl(*args).stdout)


def job(name: str, command: list[str], *, backoff: int = 0, image: str = IMAGE,
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


def test_node_is_ready_on_containerd_with_our_images_and_cluster_dns(kube: Kube):
    [node] = json.loads(kube.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert condition(node, "Ready")["status"] == "True"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert node["spec"]["podCIDR"] == "10.244.0.0/24"
    images = {n for i in node["status"]["images"] for n in i["names"]}
    assert any(n.startswith("localhost/schemagate:dev") for n in images), images
    assert any(n.startswith("localhost/schemagate@sha256:") for n in images), images
    assert not any(n.startswith(("docker.io", "registry.k8s.io")) for n in images), images
    dns = get(kube, "kube-system", "deployment/coredns")
    assert dns["status"].get("readyReplicas") == 1


def test_job_whose_pod_exits_0_completes_with_its_termination_message(kube: Kube, namespace: str):
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
                "containers": [{"name": "web", "image": IMAGE, "command": SLEEP}]}},
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
    assert condition(pod, gate)["status"] == "True"  # the kubelet's status updates kept our condition

    # A careless JSON merge patch replaces the whole list; the kubelet writes its conditions again.
    kube.kubectl("-n", namespace, "patch", "pod", name, "--subresource=status", "--type=merge", "-p",
                 json.dumps({"status": {"conditions": [{"type": gate, "status": "True", "reason": "Test"}]}}))
    wait_until("Ready=True restored by the kubelet",
               lambda: (condition(get(kube, namespace, f"pod/{name}"), "Ready") or {}).get("status") == "True")

    # And back: the gate turning False makes the pod unready again.
    kube.kubectl("-n", namespace, "patch", "pod", name, "--subresource=status", "--type=strategic", "-p",
                 json.dumps({"status": {"conditions": [{"type": gate, "status": "False", "reason": "Test"}]}}))
    wait_until("Ready=False after the gate went False",
               lambda: condition(get(kube, namespace, f"pod/{name}"), "Ready")["status"] == "False")


HARDENING_PROBE = textwrap.dedent("""
    import os
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    print("uid", os.getuid(), "gid", os.getgid())
    for key in ("Seccomp", "NoNewPrivs", "CapEff"):
        print(key, status[key].strip())
    try:
        open("/written-to-root", "w")
        print("root filesystem writable")
    except OSError as exc:
        print("root filesystem refused:", exc.strerror)
""")


def test_restricted_namespace_rejects_privileged_pods_and_the_kubelet_enforces_the_profile(kube: Kube,
                                                                                          namespace: str):
    kube.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")

    def pod(name: str, security: dict[str, Any], pod_security: dict[str, Any],
            command: list[str]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"restartPolicy": "Never", "securityContext": pod_security, "containers": [
                    {"name": "c", "image": IMAGE, "command": command, "securityContext": security}]}}

    rejected = apply(kube, namespace, pod("priv", {"privileged": True}, {}, ["true"]), check=False)
    assert rejected.returncode != 0
    assert "violates PodSecurity" in rejected.stderr and "privileged" in rejected.stderr

    # What the operator's Job pods declare (controller/jobs.py), enforced in the process by the kubelet.
    compliant = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                 "readOnlyRootFilesystem": True}
    apply(kube, namespace, pod("ok", compliant, {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                                 "seccompProfile": {"type": "RuntimeDefault"}},
                               ["python3", "-c", HARDENING_PROBE]))
    wait_until("the hardened pod to finish", lambda: get(kube, namespace, "pod/ok")["status"].get("phase")
               in ("Succeeded", "Failed"))
    out = kube.logs(namespace, "ok")
    assert "uid 65532 gid 65532" in out
    assert "Seccomp 2" in out and "NoNewPrivs 1" in out and "CapEff 0000000000000000" in out
    assert "root filesystem refused: Read-only file system" in out


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
          job("probe", ["python3", "-c", RBAC_PROBE, namespace], serviceAccountName="reader"))
    kube.kubectl("-n", namespace, "wait", "--for=condition=complete", "job/probe", "--timeout=60s")
    [pod] = job_pods(kube, namespace, "probe")
    out = kube.logs(namespace, pod["metadata"]["name"])
    assert "configmaps allowed" in out
    assert "secrets 403" in out
    assert "other-namespace-configmaps 403" in out


def test_env_and_volumes(kube: Kube, namespace: str):
    """secretKeyRef/configMapKeyRef/fieldRef env, ConfigMap (items) and Secret volumes; a missing
    Secret holds the container in CreateContainerConfigError."""
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
                                 "spec": {"containers": [{"name": "web", "image": IMAGE, "command": SLEEP}]}}}})
    kube.kubectl("-n", name, "wait", "--for=condition=Available", "deployment/app", "--timeout=60s")
    if kube.local:
        wait_until("the sleeper process", lambda: processes_with(marker))
    kube.kubectl("delete", "namespace", name, "--timeout=90s")
    gone = kube.kubectl("get", "namespace", name, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    if kube.local:  # containers are processes of this machine
        wait_until("the sleeper's container to be gone", lambda: processes_with(marker) == [], timeout=30)


def test_our_image_runs_schemagate_as_its_entrypoint(kube: Kube, namespace: str):
    spec = job("cli", [])
    container = spec["spec"]["template"]["spec"]["containers"][0]
    del container["command"]
    container["args"] = ["--help"]
    apply(kube, namespace, spec)
    kube.kubectl("-n", namespace, "wait", "--for=condition=complete", "job/cli", "--timeout=60s")
    out = kube.kubectl("-n", namespace, "logs", "job/cli").stdout
    assert "migrate" in out and "operator" in out


def test_kubectl_logs_reads_the_container_output(kube: Kube, namespace: str):
    # stdout and stderr reach the log through two pipes read by two goroutines in
    # the shim, so their relative order is not defined; the pause makes the last
    # line the last one written whatever the shim reads first.
    script = "echo line-one; echo line-two >&2; sleep 1; echo line-three"
    apply(kube, namespace, job("talk", ["sh", "-c", script]))
    kube.kubectl("-n", namespace, "wait", "--for=condition=complete", "job/talk", "--timeout=60s")
    out = kube.kubectl("-n", namespace, "logs", "job/talk").stdout
    assert "line-one" in out and "line-two" in out and "line-three" in out
    assert kube.kubectl("-n", namespace, "logs", "job/talk", "--tail=1").stdout == "line-three\n"


SERVE = textwrap.dedent("""
    import http.server
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"hello from the pod")
    http.server.HTTPServer(("", 8080), H).serve_forever()
""")
FETCH = ("import sys, urllib.request; "
         "print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())")


def test_exec_port_forward_and_a_service_name_through_cluster_dns(kube: Kube, namespace: str):
    apply(kube, namespace,
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "web", "image": IMAGE, "command": ["python3", "-c", SERVE],
                                    "ports": [{"containerPort": 8080}],
                                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    kube.kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/web", "--timeout=60s")

    assert "bookworm" in kube.kubectl("-n", namespace, "exec", "web", "--", "cat", "/etc/os-release").stdout

    # pod -> Service name (CoreDNS) -> kube-proxy's rules -> pod; hairpin too: the client is the server's pod.
    url = f"http://web.{namespace}.svc.cluster.local/"
    assert kube.kubectl("-n", namespace, "exec", "web", "--", "python3", "-c", FETCH, url).stdout.strip() \
        == "hello from the pod"
    apply(kube, namespace, job("client", ["python3", "-c", FETCH, "http://web/"]))
    kube.kubectl("-n", namespace, "wait", "--for=condition=complete", "job/client", "--timeout=60s")
    assert kube.kubectl("-n", namespace, "logs", "job/client").stdout.strip() == "hello from the pod"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    forward = subprocess.Popen([kube.kubectl_bin, f"--kubeconfig={kube.kubeconfig}", "-n", namespace,
                                "port-forward", "pod/web", f"{port}:8080"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        def fetched() -> str | None:
            import urllib.request
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
                return None

        assert wait_until("port-forward to answer", fetched, timeout=30) == "hello from the pod"
    finally:
        forward.terminate()
        forward.wait(10)


@pytest.mark.serial("forwarding")  # not while the compose tests' netavark has ip_forward on
def test_no_pod_packet_can_leave_the_machine(kube: Kube):
    """The egress guard is the first forwarding rule the kernel runs (mangle's FORWARD comes before
    filter's, where kube-proxy puts its own first): what a pod sends anywhere but the bridge is dropped."""
    rules = subprocess.run(["iptables", "-t", "mangle", "-S", "FORWARD"], capture_output=True, text=True,
                           check=True).stdout
    first = [r for r in rules.splitlines() if r.startswith("-A FORWARD")][0]
    assert first.startswith("-A FORWARD -i sgbr0 ! -o sgbr0") and first.endswith("-j DROP"), rules
    assert subprocess.run(["sysctl", "-n", "net.ipv4.ip_forward"], capture_output=True, text=True,
                          check=True).stdout.strip() == "0", "forwarding is on for the bridge alone"



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
               initContainers=[{"name": "prepare", "image": IMAGE,
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
    assert main["restartCount"] == 1, main
    # The kubelet removes the failed container once the pod is done: lastState is empty by then.
    assert main["state"]["terminated"]["exitCode"] == 0
    assert "prepared" in kube.logs(namespace, pod["metadata"]["name"], "main")
