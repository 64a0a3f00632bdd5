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

OPERATOR_RULES = [
    {"apiGroups": ["schemagate.io"], "resources": ["schemamigrations"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["schemagate.io"], "resources": ["schemamigrations/status"], "verbs": ["get", "patch"]},
    {"apiGroups": ["schemagate.io"], "resources": ["schemamigrations/finalizers"], "verbs": ["update"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]
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
    out = helm_run(helm_bin, "lint", "--strict", str(CHARTS / chart)).stdout
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


def test_operator_defaults_one_recreated_replica_restricted_with_liveness(render: Render):
    objs = render("schemagate")
    deploy = one(objs, "Deployment")
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    spec = pod_spec(objs)
    assert_restricted(spec)
    assert spec["serviceAccountName"] == "sg-schemagate"
    [c] = spec["containers"]
    assert c["image"] == "schemagate:dev"
    assert c["args"] == ["operator", "--namespace=ops", "--liveness=http://0.0.0.0:8080/healthz"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SCHEMAGATE_JOB_IMAGE"] == "schemagate:dev"  # Jobs run the operator's own image
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_operator_probes_wait_for_the_operator_to_start(render: Render):
    """kopf serves /healthz about 4 s after the process starts: no probe may fail on a normal start."""
    [c] = pod_spec(render("schemagate"))["containers"]
    startup = c["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": "health"}
    assert startup["initialDelaySeconds"] >= 5
    assert startup["initialDelaySeconds"] + startup["periodSeconds"] * startup["failureThreshold"] >= 60
    # the startup probe holds back readiness and liveness; a delay of theirs would only delay Ready
    assert "initialDelaySeconds" not in c["readinessProbe"] and "initialDelaySeconds" not in c["livenessProbe"]


def test_operator_image_by_digest_and_own_job_image(render: Render):
    digest = "sha256:" + "a" * 64
    objs = render("schemagate", "image.repository=ghcr.io/acme/schemagate", f"image.digest={digest}",
                  "operator.jobImage=ghcr.io/acme/schemagate:runner")
    [c] = pod_spec(objs)["containers"]
    assert c["image"] == f"ghcr.io/acme/schemagate@{digest}"
    assert {e["name"]: e.get("value") for e in c["env"]}["SCHEMAGATE_JOB_IMAGE"] == "ghcr.io/acme/schemagate:runner"


def test_namespaced_rbac_is_a_role_per_watched_namespace_and_nothing_cluster_wide(render: Render):
    objs = render("schemagate", "watch.namespaces={team-a,team-b}")
    assert not find(objs, "ClusterRole") and not find(objs, "ClusterRoleBinding")
    for ns in ("team-a", "team-b"):
        role = one(objs, "Role", "sg-schemagate", ns)
        assert role["rules"] == OPERATOR_RULES
        binding = one(objs, "RoleBinding", "sg-schemagate", ns)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sg-schemagate", "namespace": "ops"}]
        assert binding["roleRef"]["name"] == "sg-schemagate"
        # the migration Jobs' identity, one per watched namespace: Leases only
        one(objs, "ServiceAccount", "schemagate-migration", ns)
        assert one(objs, "Role", "schemagate-migration", ns)["rules"] == MIGRATION_RULES
        assert one(objs, "RoleBinding", "schemagate-migration", ns)["subjects"] == [
            {"kind": "ServiceAccount", "name": "schemagate-migration", "namespace": ns}]
    assert not find(objs, "Role", "sg-schemagate", "ops")  # not watched: no rights there
    [c] = pod_spec(objs)["containers"]
    assert c["args"][:3] == ["operator", "--namespace=team-a", "--namespace=team-b"]


def test_cluster_wide_mode_is_one_cluster_role(render: Render):
    objs = render("schemagate", "watch.allNamespaces=true", "migrationServiceAccount.namespaces={app}")
    assert one(objs, "ClusterRole")["rules"] == OPERATOR_RULES
    assert one(objs, "ClusterRoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": "sg-schemagate", "namespace": "ops"}]
    assert [r["metadata"]["namespace"] for r in find(objs, "Role")] == ["app"]  # the migration Role only
    [c] = pod_spec(objs)["containers"]
    assert "--all-namespaces" in c["args"] and not any(a.startswith("--namespace") for a in c["args"])


def test_no_rule_grants_wildcards_or_secret_enumeration(render: Render):
    for sets in ((), ("watch.allNamespaces=true",)):
        objs = render("schemagate", *sets)
        for role in find(objs, "Role") + find(objs, "ClusterRole"):
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
                if "secrets" in rule["resources"]:
                    assert rule["verbs"] == ["get"], rule


def test_secrets_none_leaves_secret_access_to_each_app(render: Render):
    objs = render("schemagate", "rbac.secrets=none")
    rules = one(objs, "Role", "sg-schemagate")["rules"]
    assert [r for r in rules if "secrets" in r["resources"]] == []
    app = render("config-server", "operatorAccess.enabled=true", "operatorAccess.serviceAccount=sg-schemagate",
                 "operatorAccess.namespace=ops", namespace="app", release="cs")
    role = one(app, "Role", "cs-config-server-schemagate")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["config-server-db"],
                              "verbs": ["get"]}]
    assert one(app, "RoleBinding", "cs-config-server-schemagate")["subjects"] == [
        {"kind": "ServiceAccount", "name": "sg-schemagate", "namespace": "ops"}]


def test_chart_crd_is_the_generated_one(helm_bin: str, tmp_path: Path):
    """charts/schemagate/crds/ links to crds/; what Helm installs, packaged or not, is the generated CRD."""
    generated = (REPO / "crds" / "schemagate.io_schemamigrations.yaml").read_text()
    shown = helm_run(helm_bin, "show", "crds", str(CHARTS / "schemagate")).stdout
    assert shown.strip() == generated.strip()
    helm_run(helm_bin, "package", str(CHARTS / "schemagate"), "--destination", str(tmp_path))
    [tgz] = tmp_path.glob("schemagate-*.tgz")
    assert helm_run(helm_bin, "show", "crds", str(tgz)).stdout.strip() == generated.strip()


def test_operator_rules_are_the_table_in_docs_security_md():
    """docs/security.md lists what the operator may do; the chart grants exactly that."""
    import re

    text = (REPO / "docs" / "security.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9.]*)` \| `([a-z/]+)` \| ([a-z, ]+) \|", text, re.M)
    assert rows, "docs/security.md lost its operator RBAC table"
    documented = {(g if g != "core" else "", r): sorted(v.replace(" ", "").split(",")) for g, r, v in rows}
    granted = {(rule["apiGroups"][0], rule["resources"][0]): sorted(rule["verbs"]) for rule in OPERATOR_RULES}
    assert granted == documented


@pytest.mark.parametrize("chart,value,field", [
    ("schemagate", "watch.allNamespaces=yes", "/watch/allNamespaces"),
    ("schemagate", "image.digest=latest", "/image/digest"),
    ("schemagate", "rbac.secrets=all", "/rbac/secrets"),
    ("schemagate", "watch.namespaces={Team_A}", "/watch/namespaces/0"),
    ("schemagate", "replicas=2", "replicas"),
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
    "schemagate-defaults": ("schemagate", ()),
    "schemagate-cluster-wide": ("schemagate", ("watch.allNamespaces=true", "migrationServiceAccount.namespaces={app}",
                                               "rbac.secrets=none")),
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
