"""The charts as Helm renders them: lint, RBAC shapes, restricted PSS, the CRD in sync, migrations packaged."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart_support import CHARTS, REPO, Render, find, helm_run, one

# Watching and reporting: in cluster-wide mode the ClusterRole, everywhere.
WATCH_RULES = [
    {"apiGroups": ["schemagate.io"], "resources": ["schemamigrations"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["schemagate.io"], "resources": ["schemamigrations/status"], "verbs": ["patch"]},
    {"apiGroups": ["schemagate.io"], "resources": ["schemamigrationsets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["schemagate.io"], "resources": ["schemamigrationsets/status"], "verbs": ["patch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]
# Acting: in cluster-wide mode only through a RoleBinding in each of watch.namespaces.
ACT_RULES = [
    {"apiGroups": ["schemagate.io"], "resources": ["schemamigrations/finalizers"], "verbs": ["update"]},
    {"apiGroups": ["schemagate.io"], "resources": ["schemamigrations"], "verbs": ["create", "patch"]},
    {"apiGroups": ["schemagate.io"], "resources": ["schemamigrationsets/finalizers"], "verbs": ["update"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": ["get"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["update"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
]
SECRETS_RULE = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
LIST_SECRETS_RULE = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}  # rbac.listSecrets only
MIGRATION_RULES = [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]
RESTRICTED_CONTAINER = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def pod_spec(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objs, "Deployment")["spec"]["template"]["spec"]


def assert_restricted(spec: dict[str, Any]) -> None:
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] > 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in spec["containers"]:
        assert c["securityContext"] == RESTRICTED_CONTAINER, c["name"]


@pytest.mark.parametrize("chart", ["schemagate", "config-server"])
def test_helm_lint_is_clean(helm_bin: str, chart: str):
    sets = ["--set", "watch.namespaces={app}"] if chart == "schemagate" else []  # required: no default
    out = helm_run(helm_bin, "lint", "--strict", str(CHARTS / chart), *sets).stdout
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


def test_operator_defaults_two_replicas_with_leader_election_restricted_with_liveness(render: Render):
    objs = render("schemagate", "watch.namespaces={app}")
    deploy = one(objs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    # the new pod starts as a standby before the old leader stops and hands the Lease over
    assert deploy["spec"]["strategy"] == {"type": "RollingUpdate",
                                          "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    spec = pod_spec(objs)
    assert_restricted(spec)
    assert spec["serviceAccountName"] == "sg-schemagate"
    [c] = spec["containers"]
    assert c["image"] == "schemagate:dev"
    assert c["args"] == ["operator", "--namespace=app", "--liveness=http://0.0.0.0:8080/healthz", "--log-format=json",
                         "--metrics-port=8081", "--leader-elect", "--leader-election-lease=schemagate-operator-leader",
                         "--lease-duration=15", "--renew-deadline=10", "--retry-period=2"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    assert {"name": "metrics", "containerPort": 8081, "protocol": "TCP"} in c["ports"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SCHEMAGATE_JOB_IMAGE"] == "schemagate:dev"  # Jobs run the operator's own image
    pod_ns = next(e for e in c["env"] if e["name"] == "POD_NAMESPACE")
    assert pod_ns["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_the_replicas_spread_over_nodes_but_a_single_node_still_runs_both(render: Render):
    anti = pod_spec(render("schemagate", "watch.namespaces={app}"))["affinity"]["podAntiAffinity"]
    [term] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "schemagate",
                                                                      "app.kubernetes.io/instance": "sg"}
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    required = pod_spec(render("schemagate", "watch.namespaces={app}", "podAntiAffinity=required"))
    assert required["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert "affinity" not in pod_spec(render("schemagate", "watch.namespaces={app}", "podAntiAffinity=none"))


def test_a_disruption_takes_one_operator_pod_at_a_time(render: Render):
    pdb = one(render("schemagate", "watch.namespaces={app}"), "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "schemagate",
                                                                             "app.kubernetes.io/instance": "sg"}}}
    assert not find(render("schemagate", "watch.namespaces={app}", "replicas=1", "leaderElection.enabled=false"),
                    "PodDisruptionBudget")


def test_one_replica_without_leader_election_is_recreated(render: Render):
    objs = render("schemagate", "watch.namespaces={app}", "replicas=1", "leaderElection.enabled=false")
    deploy = one(objs, "Deployment")
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"] == {"type": "Recreate"}
    [c] = pod_spec(objs)["containers"]
    assert "--leader-elect" not in c["args"]
    assert not [r for r in find(objs, "Role") if r["metadata"]["name"].endswith("-leader-election")]


def test_two_replicas_without_leader_election_are_refused(helm_bin: str):
    proc = helm_run(helm_bin, "template", "sg", str(CHARTS / "schemagate"), "-n", "ops", "--set",
                    "watch.namespaces={app}", "--set", "leaderElection.enabled=false", check=False)
    assert proc.returncode != 0 and "replicas > 1 needs leaderElection.enabled" in proc.stderr


def test_the_leader_lease_is_the_only_lease_the_operator_may_update_in_its_namespace(render: Render):
    objs = render("schemagate", "watch.namespaces={app}")
    role = one(objs, "Role", "sg-schemagate-leader-election")
    assert role["metadata"]["namespace"] == "ops" and role["rules"] == LEADER_RULES
    binding = one(objs, "RoleBinding", "sg-schemagate-leader-election")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sg-schemagate", "namespace": "ops"}]


def test_metrics_service_by_default_monitor_and_alerts_on_request(render: Render):
    objs = render("schemagate", "watch.namespaces={app}")
    svc = one(objs, "Service", "sg-schemagate-metrics")
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 8081, "targetPort": "metrics", "protocol": "TCP"}]
    assert not find(objs, "ServiceMonitor") and not find(objs, "PrometheusRule")
    objs = render("schemagate", "watch.namespaces={app}", "metrics.serviceMonitor.enabled=true",
                  "metrics.prometheusRule.enabled=true", "metrics.prometheusRule.rolloutHeldMinutes=30")
    [endpoint] = one(objs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True
    rules = {r["alert"]: r for g in one(objs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    assert set(rules) == {"SchemaMigrationStalled", "SchemaMigrationRolloutHeld", "SchemaMigrationApprovalPending",
                          "SchemaGateOperatorAbsent"}
    assert "> 1800" in rules["SchemaMigrationRolloutHeld"]["expr"]
    assert "> 86400" in rules["SchemaMigrationApprovalPending"]["expr"]
    assert "{{ $labels.name }}" in rules["SchemaMigrationStalled"]["annotations"]["summary"]
    no_metrics = render("schemagate", "watch.namespaces={app}", "metrics.enabled=false")
    assert not find(no_metrics, "Service")
    assert "--metrics-port=0" in pod_spec(no_metrics)["containers"][0]["args"]


def test_every_metric_the_alerts_use_is_listed_in_docs_operations_md(render: Render):
    import re

    objs = render("schemagate", "watch.namespaces={app}", "metrics.prometheusRule.enabled=true")
    exprs = " ".join(r["expr"] for g in one(objs, "PrometheusRule")["spec"]["groups"] for r in g["rules"])
    docs = (REPO / "docs" / "operations.md").read_text()
    for metric in set(re.findall(r"schemagate_[a-z_]+", exprs)):
        assert f"`{metric}`" in docs, metric
    for alert in ("SchemaMigrationStalled", "SchemaMigrationRolloutHeld", "SchemaMigrationApprovalPending",
                  "SchemaGateOperatorAbsent"):
        assert f"`{alert}`" in docs, alert


def test_operator_probes_wait_for_the_operator_to_start(render: Render):
    """kopf serves /healthz about 4 s after the process starts: no probe may fail on a normal start."""
    [c] = pod_spec(render("schemagate", "watch.namespaces={app}"))["containers"]
    startup = c["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": "health"}
    assert startup["initialDelaySeconds"] >= 5
    assert startup["initialDelaySeconds"] + startup["periodSeconds"] * startup["failureThreshold"] >= 60
    # the startup probe holds back readiness and liveness; a delay of theirs would only delay Ready
    assert "initialDelaySeconds" not in c["readinessProbe"] and "initialDelaySeconds" not in c["livenessProbe"]


def test_the_operator_pod_gets_no_service_link_variables(render: Render):
    """A release named schemagate has a Service schemagate-metrics: its docker-link variable
    SCHEMAGATE_METRICS_PORT=tcp://IP:PORT would land in the operator's own configuration."""
    assert pod_spec(render("schemagate", "watch.namespaces={app}"))["enableServiceLinks"] is False


def test_the_release_namespace_is_watched_only_when_named(helm_bin: str):
    proc = helm_run(helm_bin, "template", "sg", str(CHARTS / "schemagate"), "-n", "ops", check=False)
    assert proc.returncode != 0
    assert "watch.namespaces is required" in proc.stderr and "the release namespace is not assumed" in proc.stderr


def test_operator_image_by_digest_and_own_job_image(render: Render):
    digest = "sha256:" + "a" * 64
    objs = render("schemagate", "watch.namespaces={app}", "image.repository=ghcr.io/acme/schemagate",
                  f"image.digest={digest}", "operator.jobImage=ghcr.io/acme/schemagate:runner")
    [c] = pod_spec(objs)["containers"]
    assert c["image"] == f"ghcr.io/acme/schemagate@{digest}"
    assert {e["name"]: e.get("value") for e in c["env"]}["SCHEMAGATE_JOB_IMAGE"] == "ghcr.io/acme/schemagate:runner"


def _rbac(objs: list[dict[str, Any]]) -> dict[tuple[str, str, str | None], Any]:
    """Every RBAC object: (kind, name, namespace) → its rules, or for a binding (roleRef kind/name, subjects)."""
    out: dict[tuple[str, str, str | None], Any] = {}
    for o in objs:
        key = (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
        if o["kind"] in ("Role", "ClusterRole"):
            out[key] = o["rules"]
        elif o["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            out[key] = (o["roleRef"]["kind"], o["roleRef"]["name"], o["subjects"])
    return out


OPERATOR = [{"kind": "ServiceAccount", "name": "sg-schemagate", "namespace": "ops"}]


LEADER_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["schemagate-operator-leader"],
     "verbs": ["get", "update"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
]


def _migration_rbac(*namespaces: str) -> dict[tuple[str, str, str | None], Any]:
    """The migration Jobs' RBAC in each namespace, and the operator's leader Lease in the release namespace."""
    out: dict[tuple[str, str, str | None], Any] = {
        ("Role", "sg-schemagate-leader-election", "ops"): LEADER_RULES,
        ("RoleBinding", "sg-schemagate-leader-election", "ops"): ("Role", "sg-schemagate-leader-election", OPERATOR),
    }
    for ns in namespaces:
        out[("Role", "schemagate-migration", ns)] = MIGRATION_RULES
        out[("RoleBinding", "schemagate-migration", ns)] = (
            "Role", "schemagate-migration", [{"kind": "ServiceAccount", "name": "schemagate-migration", "namespace": ns}])
    return out


@pytest.mark.parametrize("secrets", ["none", "namespace"])
def test_namespaced_mode_grants_exactly_the_rules_in_each_named_namespace_and_nothing_else(render: Render, secrets):
    objs = render("schemagate", "watch.namespaces={team-a,team-b}", f"rbac.secrets={secrets}")
    rules = WATCH_RULES + ACT_RULES + ([SECRETS_RULE] if secrets == "namespace" else [])
    expected = _migration_rbac("team-a", "team-b")
    for ns in ("team-a", "team-b"):
        expected[("Role", "sg-schemagate", ns)] = rules
        expected[("RoleBinding", "sg-schemagate", ns)] = ("Role", "sg-schemagate", OPERATOR)
    assert _rbac(objs) == expected  # nothing cluster-wide, in "ops" only the leader Lease
    [c] = pod_spec(objs)["containers"]
    assert c["args"][:3] == ["operator", "--namespace=team-a", "--namespace=team-b"]


@pytest.mark.parametrize("secrets", ["none", "namespace"])
def test_cluster_wide_mode_reads_everywhere_and_acts_only_in_the_named_namespaces(render: Render, secrets):
    objs = render("schemagate", "watch.allNamespaces=true", "watch.namespaces={app}", f"rbac.secrets={secrets}")
    expected = _migration_rbac("app")
    expected[("ClusterRole", "sg-schemagate", None)] = WATCH_RULES
    expected[("ClusterRoleBinding", "sg-schemagate", None)] = ("ClusterRole", "sg-schemagate", OPERATOR)
    expected[("ClusterRole", "sg-schemagate-act", None)] = ACT_RULES + ([SECRETS_RULE] if secrets == "namespace"
                                                                         else [])
    expected[("RoleBinding", "sg-schemagate", "app")] = ("ClusterRole", "sg-schemagate-act", OPERATOR)
    assert _rbac(objs) == expected
    [c] = pod_spec(objs)["containers"]
    assert "--all-namespaces" in c["args"] and not any(a.startswith("--namespace") for a in c["args"])
    assert "--act-namespace=app" in c["args"]  # elsewhere it reports NamespaceNotAllowed instead of acting


def test_cluster_wide_writes_are_no_reads_and_reads_no_writes():
    """What a stolen token can do everywhere: read its own kind of objects, report on SchemaMigrations."""
    everywhere = {(r["resources"][0], v) for r in WATCH_RULES for v in r["verbs"]}
    assert {x for x in everywhere if x[1] not in ("get", "list", "watch")} == {
        ("schemamigrations/status", "patch"), ("schemamigrationsets/status", "patch"), ("events", "create")}
    assert not [r for r in WATCH_RULES if r["resources"][0] in ("secrets", "configmaps", "pods/status")]


def test_secrets_none_is_the_default_and_each_app_grants_its_own_by_name(render: Render):
    rules = one(render("schemagate", "watch.namespaces={app}"), "Role", "sg-schemagate")["rules"]
    assert [r for r in rules if "secrets" in r["resources"]] == []
    app = render("config-server", "operatorAccess.serviceAccount=sg-schemagate", "operatorAccess.namespace=ops",
                 namespace="app", release="cs")
    role = one(app, "Role", "cs-config-server-schemagate")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["config-server-db"],
                              "verbs": ["get"]}]
    assert one(app, "RoleBinding", "cs-config-server-schemagate")["subjects"] == [
        {"kind": "ServiceAccount", "name": "sg-schemagate", "namespace": "ops"}]


def test_the_operator_is_told_what_jobs_may_run(render: Render):
    digest = "sha256:" + "c" * 64
    objs = render("schemagate", "watch.namespaces={app}", f"image.digest={digest}",
                  "jobs.allowedImages={reg.example/m@sha256:" + "d" * 64 + "}",
                  "jobs.allowedServiceAccounts={migrator}", "jobs.backupClaimLabel=backups.acme.io/ok=yes",
                  "databases.allowedHosts={db.example,*.db.internal}")
    env = {e["name"]: e.get("value") for e in pod_spec(objs)["containers"][0]["env"]}
    assert env["SCHEMAGATE_JOB_IMAGE"] == f"schemagate@{digest}"
    assert env["SCHEMAGATE_ALLOWED_IMAGES"] == "reg.example/m@sha256:" + "d" * 64
    assert env["SCHEMAGATE_JOB_SERVICE_ACCOUNT"] == "schemagate-migration"
    assert env["SCHEMAGATE_ALLOWED_SERVICE_ACCOUNTS"] == "migrator"
    assert env["SCHEMAGATE_BACKUP_CLAIM_LABEL"] == "backups.acme.io/ok=yes"
    assert env["SCHEMAGATE_ALLOWED_DATABASE_HOSTS"] == "db.example,*.db.internal"


def _policies(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs
            if o["kind"] in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")}


def test_admission_policy_refuses_images_and_service_accounts_not_allowed(render: Render):
    objs = render("schemagate", "watch.namespaces={team-a,team-b}", "jobs.allowedImages={reg.example/m:1}",
                  "jobs.allowedServiceAccounts={migrator}")
    found = _policies(objs)
    policy = found[("ValidatingAdmissionPolicy", "sg-schemagate-schemamigrations")]
    assert policy["apiVersion"] == "admissionregistration.k8s.io/v1" and policy["spec"]["failurePolicy"] == "Fail"
    assert policy["spec"]["matchConstraints"]["resourceRules"] == [
        {"apiGroups": ["schemagate.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
         "resources": ["schemamigrations"]}]
    expressions = [v["expression"] for v in policy["spec"]["validations"]]
    assert expressions == [
        '!has(object.spec.job) || !has(object.spec.job.image) || object.spec.job.image in '
        '["schemagate:dev","reg.example/m:1"]',
        '!has(object.spec.source) || !has(object.spec.source.image) || object.spec.source.image.image in '
        '["schemagate:dev","reg.example/m:1"]',
        '!has(object.spec.job) || !has(object.spec.job.serviceAccountName) || object.spec.job.serviceAccountName in '
        '["schemagate-migration","migrator"]',
    ]
    for v in policy["spec"]["validations"]:
        assert v["reason"] == "Forbidden" and "jobs.allowed" in v["messageExpression"]
    binding = found[("ValidatingAdmissionPolicyBinding", "sg-schemagate-schemamigrations")]
    assert binding["spec"]["policyName"] == "sg-schemagate-schemamigrations"
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"] == {"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]}}


def test_admission_policy_keeps_migration_service_accounts_to_schemagate_leases(render: Render):
    from schemagate.lease import LEASE_PREFIX

    objs = render("schemagate", "watch.namespaces={app}", "jobs.allowedServiceAccounts={migrator}")
    found = _policies(objs)
    policy = found[("ValidatingAdmissionPolicy", "sg-schemagate-migration-leases")]
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["leases"]
    [condition] = policy["spec"]["matchConditions"]
    assert condition["expression"] == ('["schemagate-migration","migrator"].exists(sa, request.userInfo.username == '
                                       '"system:serviceaccount:" + request.namespace + ":" + sa)')
    [rule] = policy["spec"]["validations"]
    assert rule["expression"] == f'object.metadata.name.startsWith("{LEASE_PREFIX}")'
    binding = found[("ValidatingAdmissionPolicyBinding", "sg-schemagate-migration-leases")]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"] == ["app"]


def test_admission_policy_can_be_left_out(render: Render):
    assert _policies(render("schemagate", "watch.namespaces={app}", "admissionPolicy.enabled=false")) == {}


def _netpol(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["metadata"]["name"], o["metadata"]["namespace"]): o["spec"] for o in objs if o["kind"] == "NetworkPolicy"}


def test_network_policies_by_default_admit_only_probes_and_nothing_to_job_pods(render: Render):
    policies = _netpol(render("schemagate", "watch.namespaces={team-a,team-b}"))
    assert set(policies) == {("sg-schemagate", "ops"), ("sg-schemagate-migration-jobs", "team-a"),
                             ("sg-schemagate-migration-jobs", "team-b")}
    operator = policies[("sg-schemagate", "ops")]
    assert operator["ingress"] == [{"ports": [{"port": "health", "protocol": "TCP"}]},
                                   {"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    assert operator["egress"] == [{}]
    jobs = policies[("sg-schemagate-migration-jobs", "team-a")]
    assert jobs == {"podSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "schemagate"},
                                    "matchExpressions": [{"key": "schemagate.io/migration", "operator": "Exists"}]},
                    "policyTypes": ["Ingress"], "ingress": []}


def test_the_job_pod_policy_selects_the_pods_the_operator_renders():
    from schemagate.api.v1alpha1 import SchemaMigrationSpec
    from schemagate.controller.jobs import JobRequest, render_job

    spec = SchemaMigrationSpec.model_validate({"database": {"secretRef": {"name": "db"}},
                                               "source": {"configMaps": ["m"]}})
    job = render_job({"metadata": {"name": "app", "namespace": "a", "uid": "u"}}, spec,
                     JobRequest("app-g1-x", "x", 1, None, "l", "a/app-g1-x", "schemagate:dev"))
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "schemagate" and "schemagate.io/migration" in labels


def test_restricted_egress_allows_dns_the_apiserver_and_the_databases_only(render: Render):
    objs = render("schemagate", "watch.namespaces={app}", "networkPolicy.egress.restrict=true",
                  "networkPolicy.egress.databaseCIDRs={10.20.0.0/16}", "networkPolicy.egress.apiServerCIDRs={10.0.0.1/32}",
                  "networkPolicy.egress.apiServerPorts={6443}")
    policies = _netpol(objs)
    dns = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
           "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    egress = [dns, {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"port": 6443, "protocol": "TCP"}]},
              {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 5432, "protocol": "TCP"}]}]
    assert policies[("sg-schemagate", "ops")]["egress"] == egress
    jobs = policies[("sg-schemagate-migration-jobs", "app")]
    assert jobs["policyTypes"] == ["Ingress", "Egress"] and jobs["ingress"] == [] and jobs["egress"] == egress


@pytest.mark.parametrize("missing", ["databaseCIDRs", "apiServerCIDRs"])
def test_restricted_egress_without_addresses_is_refused_naming_the_value(helm_bin: str, missing: str):
    given = {"databaseCIDRs": "{10.20.0.0/16}", "apiServerCIDRs": "{10.0.0.1/32}"}
    sets = [f"networkPolicy.egress.{k}={v}" for k, v in given.items() if k != missing]
    args = ["template", "sg", str(CHARTS / "schemagate"), "-n", "ops", "--set", "watch.namespaces={app}",
            "--set", "networkPolicy.egress.restrict=true"]
    for s in sets:
        args += ["--set", s]
    proc = helm_run(helm_bin, *args, check=False)
    assert proc.returncode != 0 and f"networkPolicy.egress.{missing}" in proc.stderr


def test_no_rule_grants_wildcards_or_secret_enumeration(render: Render):
    for sets in (("rbac.secrets=namespace",), ("watch.allNamespaces=true", "rbac.secrets=namespace")):
        objs = render("schemagate", "watch.namespaces={app}", *sets)
        for role in find(objs, "Role") + find(objs, "ClusterRole"):
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
                if "secrets" in rule["resources"]:
                    assert rule["verbs"] == ["get"], rule


def _crd_docs(text: str) -> list[Any]:
    """The CRDs in `helm show crds` output, which joins the files without `---`: each starts at its header."""
    import re

    parts = re.split(r"^(?=# Generated by)", text, flags=re.M)
    return sorted((yaml.safe_load(p) for p in parts if p.strip()), key=lambda d: d["metadata"]["name"])


def test_chart_crd_is_the_generated_one(helm_bin: str, tmp_path: Path):
    """charts/schemagate/crds/ links to crds/; what Helm installs, packaged or not, is the generated CRDs
    (SchemaMigration and SchemaMigrationSet)."""
    generated = _crd_docs("".join(p.read_text() for p in sorted((REPO / "crds").glob("*.yaml"))))
    assert [d["metadata"]["name"] for d in generated] == ["schemamigrations.schemagate.io",
                                                          "schemamigrationsets.schemagate.io"]
    shown = helm_run(helm_bin, "show", "crds", str(CHARTS / "schemagate")).stdout
    assert _crd_docs(shown) == generated
    helm_run(helm_bin, "package", str(CHARTS / "schemagate"), "--destination", str(tmp_path))
    [tgz] = tmp_path.glob("schemagate-*.tgz")
    assert _crd_docs(helm_run(helm_bin, "show", "crds", str(tgz)).stdout) == generated


def test_list_secrets_is_opt_in_and_adds_only_list_where_the_operator_acts(render: Render):
    """A set's label selector needs `list` on Secrets; nothing else changes with rbac.listSecrets."""
    objs = render("schemagate", "watch.namespaces={app}", "rbac.listSecrets=true")
    assert one(objs, "Role", "sg-schemagate")["rules"] == WATCH_RULES + ACT_RULES + [LIST_SECRETS_RULE]
    wide = render("schemagate", "watch.allNamespaces=true", "watch.namespaces={app}", "rbac.listSecrets=true")
    assert one(wide, "ClusterRole", "sg-schemagate")["rules"] == WATCH_RULES
    assert one(wide, "ClusterRole", "sg-schemagate-act")["rules"] == ACT_RULES + [LIST_SECRETS_RULE]


def test_operator_rules_are_the_table_in_docs_security_md():
    """docs/security.md lists what the operator may do, and where; the chart grants exactly that."""
    import re

    text = (REPO / "docs" / "security.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9.]*)` \| `([a-z/]+)` \| ([a-z, ]+) \| (ClusterRole|RoleBinding) \|", text, re.M)
    assert rows, "docs/security.md lost its operator RBAC table"
    documented = sorted(((g if g != "core" else ""), r, v.replace(" ", ""), where) for g, r, v, where in rows)
    granted = sorted([(rule["apiGroups"][0], rule["resources"][0], ",".join(rule["verbs"]), "ClusterRole")
                      for rule in WATCH_RULES] +
                     [(rule["apiGroups"][0], rule["resources"][0], ",".join(rule["verbs"]), "RoleBinding")
                      for rule in ACT_RULES + [SECRETS_RULE, LIST_SECRETS_RULE]])
    assert documented == granted


@pytest.mark.parametrize("chart,value,field", [
    ("schemagate", "watch.allNamespaces=yes", "/watch/allNamespaces"),
    ("schemagate", "image.digest=latest", "/image/digest"),
    ("schemagate", "rbac.secrets=all", "/rbac/secrets"),
    ("schemagate", "watch.namespaces={Team_A}", "/watch/namespaces/0"),
    ("schemagate", "replicas=0", "/replicas"),
    ("schemagate", "podAntiAffinity=always", "/podAntiAffinity"),
    ("schemagate", "metrics.prometheusRule.stalledFor=5", "/metrics/prometheusRule/stalledFor"),
    ("config-server", "schema.targetVersion=newest", "/schema/targetVersion"),
    ("config-server", "migration.lockTimeout=soon", "/migration/lockTimeout"),
])
def test_values_schema_rejects_bad_values_naming_the_field(helm_bin: str, chart: str, value: str, field: str):
    proc = helm_run(helm_bin, "template", "x", str(CHARTS / chart), "--set", value, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert field in proc.stderr, proc.stderr


def test_app_chart_ships_the_migrations_byte_for_byte_in_immutable_configmaps(render: Render):
    objs = render("config-server", namespace="app", release="cs")
    files = sorted((REPO / "migrations").glob("*.sql"))
    cms = find(objs, "ConfigMap")
    assert len(cms) >= 1 and all(cm["immutable"] is True for cm in cms)
    assert shipped(cms) == {f.name: f.read_text() for f in files}
    smig = one(objs, "SchemaMigration")
    assert smig["spec"]["source"]["configMaps"] == [cm["metadata"]["name"] for cm in cms]
    assert smig["spec"]["database"]["secretRef"] == {"name": "config-server-db", "key": "url"}
    assert smig["spec"]["job"]["serviceAccountName"] == "schemagate-migration"
    assert smig["spec"]["targetVersion"] == "latest"
    assert not find(objs, "Secret")  # existingSecret: referenced, never created


def test_app_deployment_is_gated_and_never_loses_serving_pods(render: Render):
    objs = render("config-server", "image.repository=registry.example/cs", "image.tag=2.3.4",
                  namespace="app", release="cs")
    deploy = one(objs, "Deployment")
    assert deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    tpl = deploy["spec"]["template"]
    newest = max(int(f.name.split("_")[0]) for f in (REPO / "migrations").glob("*.sql"))
    assert tpl["metadata"]["annotations"]["schemagate.io/required-schema-version"] == str(newest)
    spec = tpl["spec"]
    assert spec["readinessGates"] == [{"conditionType": "schemagate.io/schema-ready"}]
    assert_restricted(spec)
    [c] = spec["containers"]
    assert c["image"] == "registry.example/cs:2.3.4"
    assert c["env"][0] == {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "config-server-db",
                                                                                  "key": "url"}}}


def test_app_secret_from_values_is_created_and_used(render: Render):
    objs = render("config-server", "database.url=postgres://u:dev-only@db:5432/cs", namespace="app", release="cs")
    secret = one(objs, "Secret", "cs-config-server-db")
    assert secret["stringData"] == {"url": "postgres://u:dev-only@db:5432/cs"}
    assert one(objs, "SchemaMigration")["spec"]["database"]["secretRef"]["name"] == "cs-config-server-db"
    assert "dev-only" not in json.dumps(one(objs, "Deployment"))  # only a secretKeyRef


def test_app_chart_without_a_secret_says_what_to_set(helm_bin: str):
    proc = helm_run(helm_bin, "template", "cs", str(CHARTS / "config-server"), "--set", "database.existingSecret=",
                    check=False)
    assert proc.returncode != 0
    assert "set database.existingSecret" in proc.stderr


def _chart_copy(tmp_path: Path, files: dict[str, str]) -> Path:
    chart = tmp_path / "config-server"
    shutil.copytree(CHARTS / "config-server", chart, symlinks=True)
    (chart / "files" / "migrations").unlink()
    (chart / "files" / "migrations").mkdir()
    for name, text in files.items():
        (chart / "files" / "migrations" / name).write_text(text)
    return chart


def _migration(body: str) -> str:
    return f"-- +goose Up\n{body}\n-- +goose Down\nSELECT 1;\n"


PACK_LIMIT = 900 * 1024  # bytes of file names and contents per ConfigMap; the apiserver's limit is 1 MiB


def shipped(cms: list[dict[str, Any]]) -> dict[str, str]:
    """The migration files the ConfigMaps carry, refusing a file name in two of them (as the operator does)."""
    files: dict[str, str] = {}
    for cm in cms:
        for name, text in cm["data"].items():
            assert name not in files, f"{name} in two ConfigMaps"
            files[name] = text
    return files


def _files(count: int, size: int) -> dict[str, str]:
    """`count` migrations of about `size` bytes each, some a little larger, so packs do not come out even."""
    out = {}
    for v in range(1, count + 1):
        body = "".join(f"CREATE TABLE IF NOT EXISTS t{v}_{i} (id bigint PRIMARY KEY);\n"
                       for i in range(max(1, size * (1 + v % 3) // 2 // 50)))
        out[f"{v:05d}_create_tables_{v}.sql"] = _migration(body)
    return out


def _packed(cms: list[dict[str, Any]]) -> list[list[str]]:
    return [list(cm["data"]) for cm in cms]


@pytest.mark.parametrize("count, size", [(33, 2_000), (100, 2_000), (500, 2_000), (40, 120_000)])
def test_any_number_of_migrations_is_packed_into_configmaps_by_size_in_file_order(render: Render, tmp_path: Path,
                                                                                  count: int, size: int):
    files = _files(count, size)
    objs = render(_chart_copy(tmp_path, files), namespace="app", release="cs")
    cms = find(objs, "ConfigMap")
    assert shipped(cms) == files
    assert [name for pack in _packed(cms) for name in pack] == sorted(files)  # file order, no reordering
    for cm in cms:
        assert sum(len(k.encode()) + len(v.encode()) for k, v in cm["data"].items()) <= PACK_LIMIT
        assert cm["immutable"] is True
    # greedy: a pack is closed only when the next file would not fit
    for this, following in zip(cms, cms[1:]):
        first = next(iter(following["data"].items()))
        total = sum(len(k) + len(v) for k, v in [*this["data"].items(), first])
        assert total > PACK_LIMIT
    smig = one(objs, "SchemaMigration")
    assert smig["spec"]["source"]["configMaps"] == [cm["metadata"]["name"] for cm in cms]
    assert len(cms) <= 32  # the CRD's cap on spec.source.configMaps
    annotations = one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["schemagate.io/required-schema-version"] == str(count)


def test_a_schema_over_1mib_spreads_over_configmaps_and_the_newest_version_is_required(render: Render,
                                                                                     tmp_path: Path):
    big = "".join(f"CREATE TABLE IF NOT EXISTS t{i} (id bigint PRIMARY KEY, note text NOT NULL DEFAULT '');\n"
                  for i in range(7000))  # ~600 kB each, 1.8 MB together
    chart = _chart_copy(tmp_path, {"00001_a.sql": _migration(big), "00002_b.sql": _migration(big),
                                   "20250101120000_c.sql": _migration(big)})
    objs = render(chart, namespace="app", release="cs")
    cms = find(objs, "ConfigMap")
    assert _packed(cms) == [["00001_a.sql"], ["00002_b.sql"], ["20250101120000_c.sql"]]
    assert sum(len(v) for cm in cms for v in cm["data"].values()) > 1024 * 1024
    assert all(len(yaml.safe_dump(cm)) < 1024 * 1024 for cm in cms)
    assert one(objs, "SchemaMigration")["spec"]["source"]["configMaps"] == [c["metadata"]["name"] for c in cms]
    annotations = one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["schemagate.io/required-schema-version"] == "20250101120000"


def test_a_new_migration_leaves_the_full_configmaps_as_they_were(render: Render, tmp_path: Path):
    files = _files(60, 40_000)
    before = find(render(_chart_copy(tmp_path / "a", files), namespace="app", release="cs"), "ConfigMap")
    again = find(render(_chart_copy(tmp_path / "b", files), namespace="app", release="cs"), "ConfigMap")
    assert again == before  # deterministic
    added = {**files, "00061_one_more.sql": _migration("CREATE TABLE IF NOT EXISTS t61 (id bigint);")}
    after = find(render(_chart_copy(tmp_path / "c", added), namespace="app", release="cs"), "ConfigMap")
    names = [cm["metadata"]["name"] for cm in before]
    assert [cm["metadata"]["name"] for cm in after][:-1] == names[:-1]
    assert after[-1]["metadata"]["name"] != names[-1]  # its content changed, so did its name


def _helm_upgrade(deployed: list[dict[str, Any]], live: dict[str, dict[str, Any]],
                  target: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ConfigMaps after `helm upgrade`, as Helm 3 computes them: a three-way strategic merge of the last
    *deployed* release's object (original), the live object and the chart's (modified). An object the
    deployed release lacks but the cluster has (left by a failed release) is adopted with the chart's
    object as original. A key is deleted only if the original had it, so keys a failed release added survive.
    """
    original = {cm["metadata"]["name"]: cm for cm in deployed}
    out = dict(live)
    for cm in target:
        name = cm["metadata"]["name"]
        if name not in out:
            out[name] = cm
            continue
        if out[name].get("immutable") and out[name]["data"] != cm["data"]:
            raise AssertionError(f"ConfigMap {name} is immutable: the upgrade would fail")
        base = original.get(name, cm)
        data = {k: v for k, v in out[name]["data"].items() if not (k in base["data"] and k not in cm["data"])}
        out[name] = {**cm, "data": {**data, **cm["data"]}}
    for name in set(original) - {cm["metadata"]["name"] for cm in target}:
        out.pop(name, None)
    return out


def test_a_failed_upgrade_leaves_nothing_behind_that_the_next_release_would_read(render: Render, tmp_path: Path):
    def release(files: dict[str, str], tag: str) -> list[dict[str, Any]]:
        return render(_chart_copy(tmp_path / tag, files), namespace="app", release="cs")

    first = {"00001_a.sql": _migration("CREATE TABLE IF NOT EXISTS a (id bigint);"),
             "00002_b.sql": _migration("CREATE TABLE IF NOT EXISTS b (id bigint);"),
             "00003_c.sql": _migration("CREATE TABLE IF NOT EXISTS c (id bigint);")}
    deployed = find(release(first, "r1"), "ConfigMap")
    # Release 2 renders and applies its ConfigMaps, then fails (in the field: the SchemaMigration was refused).
    tried = {**first, **{f"{v:05d}_first_try_{v}.sql": _migration(f"SELECT {v};") for v in range(4, 33)}}
    live = _helm_upgrade(deployed, {cm["metadata"]["name"]: cm for cm in deployed},
                         find(release(tried, "r2"), "ConfigMap"))
    # Release 3, after the fix: the same versions under other names, and one file more.
    fixed = {**first, **{f"{v:05d}_second_try_{v}.sql": _migration(f"SELECT {v};") for v in range(4, 34)}}
    objs = release(fixed, "r3")
    after = _helm_upgrade(deployed, live, find(objs, "ConfigMap"))
    listed = one(objs, "SchemaMigration")["spec"]["source"]["configMaps"]
    assert shipped([after[name] for name in listed]) == fixed


def test_a_single_file_over_the_configmap_limit_is_refused_by_name(helm_bin: str, tmp_path: Path):
    chart = _chart_copy(tmp_path, {"00001_huge.sql": _migration("SELECT 1;\n" * 93_000)})  # ~930 kB
    proc = helm_run(helm_bin, "template", "cs", str(chart), check=False)
    assert proc.returncode != 0
    assert "files/migrations/00001_huge.sql is" in proc.stderr and "split it" in proc.stderr


def test_more_migrations_than_32_configmaps_hold_point_to_the_image_source(helm_bin: str, tmp_path: Path):
    half = _migration("SELECT 1;\n" * 50_000)  # ~500 kB: two never share a ConfigMap
    chart = _chart_copy(tmp_path, {f"{v:05d}_x.sql": half for v in range(1, 34)})
    proc = helm_run(helm_bin, "template", "cs", str(chart), check=False)
    assert proc.returncode != 0
    assert "33 ConfigMaps" in proc.stderr and "migrationsImage" in proc.stderr, proc.stderr


def test_a_file_name_without_version_is_refused_by_name(helm_bin: str, tmp_path: Path):
    chart = _chart_copy(tmp_path, {"00001_a.sql": _migration("SELECT 1;"), "add_b.sql": _migration("SELECT 2;")})
    proc = helm_run(helm_bin, "template", "cs", str(chart), check=False)
    assert proc.returncode != 0
    assert "files/migrations/add_b.sql" in proc.stderr


def test_packaged_app_chart_carries_the_migrations(helm_bin: str, render: Render, tmp_path: Path):
    helm_run(helm_bin, "package", str(CHARTS / "config-server"), "--destination", str(tmp_path))
    [tgz] = tmp_path.glob("config-server-*.tgz")
    with tarfile.open(tgz) as tar:
        names = tar.getnames()
    sql = sorted(f.name for f in (REPO / "migrations").glob("*.sql"))
    assert sorted(Path(n).name for n in names if n.startswith("config-server/files/migrations/")) == sql
    from_package = render(tgz, namespace="app", release="cs")
    assert find(from_package, "ConfigMap") == find(render("config-server", namespace="app", release="cs"),
                                                   "ConfigMap")


CHECKOV_RENDERS = {
    "schemagate-defaults": ("schemagate", ("watch.namespaces={app}",)),
    "schemagate-cluster-wide": ("schemagate", ("watch.allNamespaces=true", "watch.namespaces={app}",
                                               "rbac.secrets=namespace")),
    "schemagate-egress": ("schemagate", ("watch.namespaces={app}", "networkPolicy.egress.restrict=true",
                                         "networkPolicy.egress.databaseCIDRs={10.20.0.0/16}",
                                         "networkPolicy.egress.apiServerCIDRs={10.0.0.1/32}")),
    "config-server-defaults": ("config-server", ()),
    "config-server-all-options": ("config-server", ("database.url=postgres://u:p@db/cs",
                                                    "migration.createServiceAccount=true",
                                                    "operatorAccess.enabled=true")),
}


def test_checkov_finds_no_failed_check_in_the_rendered_charts(helm_bin: str, checkov_bin: str, tmp_path: Path):
    import subprocess

    for name, (chart, sets) in CHECKOV_RENDERS.items():
        args = ["template", "rel", str(CHARTS / chart), "--namespace", "apps"]
        for s in sets:
            args += ["--set", s]
        (tmp_path / f"{name}.yaml").write_text(helm_run(helm_bin, *args).stdout)
    proc = subprocess.run([checkov_bin, "--config-file", str(REPO / ".checkov.yaml"), "-d", str(tmp_path),
                           "--output", "json"], capture_output=True, text=True, timeout=300, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no JSON report (exit {proc.returncode}): {proc.stderr[-2000:]}")
    reports = report if isinstance(report, list) else [report]
    summary = {k: sum(r["summary"][k] for r in reports) for k in ("passed", "failed")}
    failed = [(c["check_id"], c["resource"], c["file_path"]) for r in reports for c in r["results"]["failed_checks"]]
    assert failed == [], f"checkov failed checks: {failed}"
    assert summary["passed"] > 100  # it really looked at the workloads and roles
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_checkov_skip_carries_its_reason():
    import re

    for tpl in CHARTS.glob("*/templates/*.yaml"):
        for m in re.finditer(r"checkov\.io/skip\d+: (\S+?)=(.*)", tpl.read_text()):
            assert re.fullmatch(r"CKV2?_K8S_\d+", m.group(1)) and len(m.group(2).split()) >= 5, (tpl, m.group(0))
    lines = (REPO / ".checkov.yaml").read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if re.fullmatch(r"\s*- CKV2?_K8S_\d+", line)]
    assert skips, ".checkov.yaml skips nothing: drop this test's expectation"
    for i in skips:
        assert lines[i - 1].strip().startswith("#"), f".checkov.yaml: {lines[i].strip()} has no reason above it"


def test_migrations_from_an_image_for_schemas_too_big_for_a_helm_release(render: Render, helm_bin: str):
    objs = render("config-server", "migrationsImage.image=registry.example/cs-migrations:1.4.0",
                  "schema.requiredVersion=7", namespace="app", release="cs")
    assert not find(objs, "ConfigMap")
    assert one(objs, "SchemaMigration")["spec"]["source"] == {
        "image": {"image": "registry.example/cs-migrations:1.4.0", "path": "/migrations"}}
    annotations = one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["schemagate.io/required-schema-version"] == "7"
    proc = helm_run(helm_bin, "template", "cs", str(CHARTS / "config-server"),
                    "--set", "migrationsImage.image=registry.example/cs-migrations:1.4.0", check=False)
    assert proc.returncode != 0 and "set schema.requiredVersion" in proc.stderr


def _notes(helm_bin: str, tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as `helm install` prints it (helm template does not render it): the same text, rendered
    through a copy of the chart that puts it into a ConfigMap."""
    chart = tmp_path / "schemagate"
    shutil.copytree(CHARTS / "schemagate", chart, symlinks=False)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "_notes.tpl").write_text('{{- define "notes" -}}\n' + notes + "\n{{- end -}}\n")
    (chart / "templates" / "notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ include "notes" . | quote }}\n')
    args = ["template", "sg", str(chart), "-n", "ops", "--show-only", "templates/notes.yaml"]
    for s in sets:
        args += ["--set", s]
    return yaml.safe_load(helm_run(helm_bin, *args).stdout)["data"]["notes"]


def test_notes_recommend_a_digest_outside_development_and_say_what_jobs_may_run(helm_bin: str, tmp_path: Path):
    text = _notes(helm_bin, tmp_path, "watch.namespaces={app}")
    assert "image.digest is not set" in text and "Outside development set" in text
    assert 'Jobs may run only these images: ["schemagate:dev"]' in text
    assert 'ServiceAccounts: ["schemagate-migration"]' in text
    assert "Egress of the operator and the Jobs is open" in text
    pinned = _notes(helm_bin, tmp_path / "pinned", "watch.namespaces={app}", "image.digest=sha256:" + "e" * 64)
    assert "image.digest is not set" not in pinned
    assert f'["schemagate@sha256:{"e" * 64}"]' in pinned
