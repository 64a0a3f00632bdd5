"""spec.job.env / envFrom on the real node: ENVSUB reads what the SchemaMigration declares, from the
Secrets and ConfigMaps the kubelet resolves, and nothing else (issue 16 item 1, issue 17 item 4).

Written without a cluster to run it on (the node was in use): collected, not yet run.
"""

from __future__ import annotations

import json

import pytest
import yaml


pytestmark = pytest.mark.e2e

PASSWORD = "Tr0ub4dor-e2e-envsub"
FILES = {
    "00001_items.sql": "-- +goose Up\n-- +goose ENVSUB ON\nCREATE TABLE ${TABLE_PREFIX}items (region text "
                       "DEFAULT '${REGION}', tier text DEFAULT '${CFG_TIER}');\n"
                       "-- +goose Down\nDROP TABLE ${TABLE_PREFIX}items;\n",
    # A table, not a role: roles are cluster-wide and outlive the test's database. (`$$` is ENVSUB's `$`.)
    "00002_role.sql": "-- +goose Up\n-- +goose ENVSUB ON\n"
                      "CREATE TABLE ${TABLE_PREFIX}credentials (password text DEFAULT '${APP_PW?}');\n"
                      "-- +goose Down\nDROP TABLE ${TABLE_PREFIX}credentials;\n",
}
ENV = [{"name": "TABLE_PREFIX", "value": "shop_"}, {"name": "REGION", "value": "eu"},
       {"name": "APP_PW", "valueFrom": {"secretKeyRef": {"name": "app-role", "key": "password"}}}]
ENV_FROM = [{"prefix": "CFG_", "configMapRef": {"name": "app-settings"}}]


def _setup(app, files=FILES) -> None:
    app.secret(app.database_url)
    app.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-role"},
               "stringData": {"password": PASSWORD}},
              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-settings"},
               "data": {"TIER": "gold"}})
    app.migrations(files)


def test_declared_variables_reach_envsub_from_values_secrets_and_configmaps(app):
    _setup(app)
    app.schemamigration(job={"env": ENV, "envFrom": ENV_FROM})
    status = app.wait_ready(2, timeout=180)
    assert app.table_exists("shop_items")
    import psycopg

    with psycopg.connect(app.database_url) as conn:
        defaults = conn.execute("SELECT column_name, column_default FROM information_schema.columns WHERE "
                                "table_name = 'shop_items' ORDER BY column_name").fetchall()
        password = conn.execute("SELECT column_default FROM information_schema.columns WHERE "
                                "table_name = 'shop_credentials'").fetchone()[0]
    assert defaults == [("region", "'eu'::text"), ("tier", "'gold'::text")]
    assert password == f"'{PASSWORD}'::text"  # the Secret's value, resolved by the kubelet
    # The plan checked 00001 with the literal values and says it could not check the others.
    by_file = {m["file"]: m for m in status["plan"]["migrations"]}
    assert by_file["00001_items.sql"]["envsubUnchecked"] == ["CFG_TIER"]
    assert by_file["00002_role.sql"]["envsubUnchecked"] == ["APP_PW"]
    # The Job holds references and the literal values, under SCHEMAGATE_ENV_*; the password nowhere.
    (job,) = app.jobs()
    assert PASSWORD not in json.dumps(job)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    names = {e["name"]: e for e in container["env"]}
    assert names["SCHEMAGATE_ENVSUB_NAMES"]["value"] == "APP_PW,REGION,TABLE_PREFIX,CFG_*"
    assert names["SCHEMAGATE_ENV_APP_PW"]["valueFrom"] == {"secretKeyRef": {"name": "app-role", "key": "password"}}
    assert container["envFrom"] == [{"prefix": "SCHEMAGATE_ENV_CFG_", "configMapRef": {"name": "app-settings"}}]
    assert "APP_PW" not in names and "REGION" not in names
    app.last_job()  # the pod's container ended: its log is whole
    logs = app.kubectl("logs", f"job/{job['metadata']['name']}").stdout
    assert PASSWORD not in logs and PASSWORD not in json.dumps(app.status())


@pytest.mark.parametrize("job, words", [
    ({"env": [{"name": "DATABASE_URL", "value": "x"}]}, "spec.job.env[].name: DATABASE_URL, PG* and SCHEMAGATE_*"),
    ({"env": [{"name": "PGPASSWORD", "value": "x"}]}, "spec.job.env[].name: DATABASE_URL, PG* and SCHEMAGATE_*"),
    ({"env": [{"name": "SCHEMAGATE_ENVSUB_NAMES", "value": "x"}]}, "belong to the runner"),
    ({"envFrom": [{"prefix": "PG", "secretRef": {"name": "app-role"}}]}, "spec.job.envFrom[].prefix"),
    ({"envFrom": [{"secretRef": {"name": "app-role"}}]}, "prefix"),
    ({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
     ("exactly one of secretKeyRef or configMapKeyRef", 'unknown field "spec.job.env[0].valueFrom.fieldRef"')),
])
def test_the_apiserver_refuses_the_runners_names(app, job, words):
    """kubectl's strict field validation may name the unknown field before the CEL rule runs."""
    doc = {"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration", "metadata": {"name": "app"},
           "spec": {"database": {"secretRef": {"name": "app-db"}}, "source": {"configMaps": ["app-migrations"]},
                    "job": job}}
    out = app.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc), check=False)
    alternatives = (words,) if isinstance(words, str) else words
    assert out.returncode != 0 and any(w in out.stderr for w in alternatives), out.stderr
    assert app.kubectl("get", "smig", "app", check=False).returncode != 0


def test_an_undeclared_variable_stalls_before_any_job_then_declaring_it_recovers(app):
    _setup(app)
    app.schemamigration(job={"env": ENV[:2]})  # APP_PW and CFG_* not declared
    stalled = app.wait_condition("Stalled", "True", "InvalidMigrations")
    assert "invalid migration 00001_items.sql:3" in stalled["message"], stalled
    assert "$CFG_TIER is not declared: declare it in the SchemaMigration's spec.job.env" in stalled["message"]
    assert app.jobs() == [] and app.db_versions() == []
    app.schemamigration(job={"env": ENV, "envFrom": ENV_FROM})
    app.wait_ready(2, timeout=180)


def test_envsub_never_substitutes_the_connection(app):
    """issue 17 item 4: `${DATABASE_URL}` is refused by the plan, whatever the runner's environment holds."""
    _setup(app, {"00001_leak.sql": "-- +goose Up\n-- +goose ENVSUB ON\nSELECT reverse('${DATABASE_URL}')::int;\n"
                                   "-- +goose Down\nSELECT 1;\n"})
    app.schemamigration()
    stalled = app.wait_condition("Stalled", "True", "InvalidMigrations")
    assert "$DATABASE_URL is never substituted" in stalled["message"], stalled
    assert app.jobs() == []


def test_a_secret_value_in_a_failing_statement_is_masked(app):
    _setup(app, {"00001_cast.sql": "-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${APP_PW}'::int;\n"
                                   "-- +goose Down\nSELECT 1;\n"})
    app.schemamigration(job={"env": ENV})
    stalled = app.wait_condition("Stalled", "True", "MigrationFailed", timeout=180)
    last = app.last_job()
    assert 'invalid input syntax for type integer: "xxxxx"' in last["message"], last
    events = app.kubectl("get", "events", "-o", "json").stdout
    for text in (stalled["message"], last["message"], events, app.operator.logs()):
        assert PASSWORD not in text


def test_a_missing_secret_says_why_the_pod_cannot_start_and_creating_it_lets_the_run_go_on(app):
    app.secret(app.database_url)
    app.migrations(FILES)
    app.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-settings"},
               "data": {"TIER": "gold"}})
    app.schemamigration(job={"env": ENV, "envFrom": ENV_FROM})  # Secret app-role does not exist yet

    def stuck():
        c = app.condition("Reconciling")
        return c if "its pod cannot start: CreateContainerConfigError" in c.get("message", "") else None

    cond = app.wait_for("app", "Migrating with the kubelet's reason", stuck, timeout=120)
    assert 'secret "app-role" not found' in cond["message"], cond
    app.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-role"},
               "stringData": {"password": PASSWORD}})
    app.wait_ready(2, timeout=180)  # the kubelet retried; the same Job ran
    assert len(app.jobs()) == 1
