"""spec.job.env / envFrom: ENVSUB reads only what a SchemaMigration declares (issue 16 item 1, issue 17 item 4).

The API refuses the runner's names, the Job passes references (never a value the operator read) under
SCHEMAGATE_ENV_*, the runner substitutes declared names only, and the operator's plan checks the files with
the literal values and says which ones it could not check.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemagate import cli
from schemagate.api import crd, reasons
from schemagate.api.v1alpha1 import SchemaMigrationSpec
from schemagate.controller import approval, jobenv, observe
from schemagate.controller import decide as p
from schemagate.controller.jobs import JobRequest, render_job
from schemagate.migrate import envsub
from schemagate.migrate.parser import MigrationParseError, parse
from schemagate.migrate.source import load_files
from tests.unit import reconcile_world
from tests.unit.reconcile_world import World

OBJ = {"metadata": {"name": "app", "namespace": "team", "uid": "u-1", "generation": 3}}
ENV = [{"name": "REGION", "value": "eu"},
       {"name": "APP_PW", "valueFrom": {"secretKeyRef": {"name": "app-role", "key": "password"}}},
       {"name": "TIER", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "tier", "optional": True}}}]
ENV_FROM = [{"prefix": "CFG_", "configMapRef": {"name": "settings"}},
            {"prefix": "VAULT_", "secretRef": {"name": "vault", "optional": True}}]


def spec(**job) -> SchemaMigrationSpec:
    return SchemaMigrationSpec.model_validate({"database": {"secretRef": {"name": "app-db"}},
                                               "source": {"configMaps": ["m"]}, "job": job})


def envsub_file(body: str) -> str:
    return f"-- +goose Up\n-- +goose ENVSUB ON\n{body}\n-- +goose Down\nSELECT 1;\n"


# --- The API ---------------------------------------------------------------------------------------------

def test_env_and_env_from_parse():
    job = spec(env=ENV, envFrom=ENV_FROM).job
    assert [e.name for e in job.env] == ["REGION", "APP_PW", "TIER"]
    assert job.env[1].value_from.secret_key_ref.key == "password"
    assert [f.prefix for f in job.env_from] == ["CFG_", "VAULT_"]


@pytest.mark.parametrize("name", ["DATABASE_URL", "PGPASSWORD", "PGHOST", "PG", "SCHEMAGATE_ENVSUB_NAMES",
                                  "SCHEMAGATE_ENV_X"])
def test_the_runners_names_are_refused_naming_the_field(name):
    with pytest.raises(ValidationError) as err:
        spec(env=[{"name": name, "value": "x"}])
    text = str(err.value)
    assert "job.env.0.name" in text and "spec.job.env[].name" in text and "belong to the runner" in text


@pytest.mark.parametrize("prefix", ["PG", "PGX_", "P", "SCHEMAGATE_", "SCHEMA", "DATABASE_", "D"])
def test_an_env_from_prefix_that_could_make_a_runner_name_is_refused(prefix):
    with pytest.raises(ValidationError, match=r"spec.job.envFrom\[\].prefix"):
        spec(envFrom=[{"prefix": prefix, "configMapRef": {"name": "settings"}}])


@pytest.mark.parametrize("job, words", [
    ({"env": [{"name": "A", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
     "mutually exclusive"),
    ({"env": [{"name": "A", "valueFrom": {}}]}, "exactly one of secretKeyRef or configMapKeyRef"),
    ({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
     "exactly one of secretKeyRef or configMapKeyRef"),  # fieldRef/resourceFieldRef are not offered
    ({"env": [{"name": "1A", "value": "x"}]}, "job.env.0.name"),  # ENVSUB could never read it
    ({"envFrom": [{"configMapRef": {"name": "settings"}}]}, "job.envFrom.0.prefix"),
    ({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "spec.job.env names A more than once"),  # the prefix is required
    ({"envFrom": [{"prefix": "A_", "configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]},
     "exactly one of configMapRef or secretRef"),
])
def test_malformed_declarations_are_refused(job, words):
    with pytest.raises(ValidationError, match=words.replace("[", r"\[").replace(".", r"\.")):
        spec(**job)


def test_the_crd_refuses_them_at_admission_too():
    job = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["job"]
    env = job["properties"]["env"]
    assert env["x-kubernetes-list-type"] == "map" and env["x-kubernetes-list-map-keys"] == ["name"]
    item = env["items"]
    (name_rule,) = item["properties"]["name"]["x-kubernetes-validations"]
    assert "DATABASE_URL" in name_rule["rule"] and "startsWith('PG')" in name_rule["rule"]
    assert name_rule["message"].startswith("spec.job.env[].name: DATABASE_URL, PG* and SCHEMAGATE_*")
    assert [r["message"] for r in item["x-kubernetes-validations"]] == ["env: value and valueFrom are mutually exclusive"]
    assert set(item["properties"]["valueFrom"]["properties"]) == {"secretKeyRef", "configMapKeyRef"}
    env_from = job["properties"]["envFrom"]["items"]
    assert "prefix" in env_from["required"]
    assert env_from["properties"]["prefix"]["x-kubernetes-validations"][0]["message"].startswith(
        "spec.job.envFrom[].prefix")


# --- The Job ---------------------------------------------------------------------------------------------

def _container(s: SchemaMigrationSpec) -> dict:
    req = JobRequest(name="app-g3-abcdef12", plan="abcdef12", generation=3, target=None, lease_name="l",
                     lease_holder="team/app-g3-abcdef12", default_image="schemagate:dev")
    (container,) = render_job(OBJ, s, req)["spec"]["template"]["spec"]["containers"]
    return container


def test_the_job_passes_references_and_literals_under_schemagate_env():
    container = _container(spec(env=ENV, envFrom=ENV_FROM))
    env = {e["name"]: e for e in container["env"]}
    assert env["SCHEMAGATE_ENVSUB_NAMES"] == {"name": "SCHEMAGATE_ENVSUB_NAMES",
                                              "value": "APP_PW,REGION,TIER,CFG_*,VAULT_*"}
    # Values from Secrets (not ConfigMaps, not literals) are masked in the runner's messages.
    assert env["SCHEMAGATE_ENVSUB_REDACT"] == {"name": "SCHEMAGATE_ENVSUB_REDACT", "value": "APP_PW,VAULT_*"}
    assert env["SCHEMAGATE_ENV_REGION"] == {"name": "SCHEMAGATE_ENV_REGION", "value": "eu"}
    assert env["SCHEMAGATE_ENV_APP_PW"] == {"name": "SCHEMAGATE_ENV_APP_PW", "valueFrom": {
        "secretKeyRef": {"name": "app-role", "key": "password"}}}
    assert env["SCHEMAGATE_ENV_TIER"]["valueFrom"] == {"configMapKeyRef": {"name": "settings", "key": "tier",
                                                                          "optional": True}}
    assert container["envFrom"] == [{"prefix": "SCHEMAGATE_ENV_CFG_", "configMapRef": {"name": "settings"}},
                                    {"prefix": "SCHEMAGATE_ENV_VAULT_", "secretRef": {"name": "vault",
                                                                                     "optional": True}}]
    # No declared name reaches the process under its own name (PYTHONPATH, LD_PRELOAD ... could not either).
    assert not {"REGION", "APP_PW", "TIER"} & set(env)
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "app-db", "key": "url"}


def test_a_job_without_declarations_still_says_none_were_made():
    container = _container(spec())
    assert {"name": "SCHEMAGATE_ENVSUB_NAMES", "value": ""} in container["env"]
    assert "envFrom" not in container
    assert [e["name"] for e in container["env"]] == ["DATABASE_URL", "PYTHONDONTWRITEBYTECODE",
                                                     "SCHEMAGATE_ENVSUB_NAMES"]


# --- The runner: declared names only ---------------------------------------------------------------------

JOB_ENVIRON = {  # what the Job's pod gets from the container above, plus what the image and kubelet set
    "DATABASE_URL": "postgres://app:s3cret@db/app", "PGPASSWORD": "s3cret", "HOSTNAME": "app-g3-abcdef12-x",
    "HOME": "/home/nonroot", "SCHEMAGATE_ENVSUB_NAMES": "APP_PW,REGION,CFG_*", "SCHEMAGATE_ENV_REGION": "eu",
    "SCHEMAGATE_ENV_APP_PW": "hunter2", "SCHEMAGATE_ENV_CFG_TIER": "gold", "APP_ROLE": "reader"}


def test_the_runner_substitutes_declared_names_from_their_schemagate_env_values():
    env = envsub.from_process(JOB_ENVIRON)
    [stmt] = parse(envsub_file("SELECT '${REGION}', '${APP_PW}', '${CFG_TIER}', '${CFG_NOPE:-d}';"),
                   "00001_x.sql", env).up
    assert stmt.sql == "SELECT 'eu', 'hunter2', 'gold', 'd';"


@pytest.mark.parametrize("ref", ["APP_ROLE", "HOSTNAME", "HOME", "DATABASE_URL", "PGPASSWORD",
                                 "SCHEMAGATE_ENV_APP_PW", "SCHEMAGATE_ENVSUB_NAMES"])
def test_an_undeclared_name_fails_naming_file_line_and_variable(ref):
    """Set in the process environment or not: only declarations count; the connection never."""
    with pytest.raises(MigrationParseError) as info:
        parse(envsub_file(f"SELECT reverse('${{{ref}:-x}}');"), "00004_role.sql", envsub.from_process(JOB_ENVIRON))
    e = info.value
    assert (e.file, e.line) == ("00004_role.sql", 3)
    assert f"${ref}" in e.message
    if envsub.withheld(ref):
        assert "never substituted" in e.message
    else:
        assert "is not declared: declare it in the SchemaMigration's spec.job.env" in e.message
        assert f"--envsub-allow {ref}" in e.message
    assert "s3cret" not in str(e) and "hunter2" not in str(e)


def test_declaring_the_connection_does_not_make_it_readable():
    environ = {**JOB_ENVIRON, "SCHEMAGATE_ENVSUB_NAMES": "DATABASE_URL,PGPASSWORD,PG*",
               "SCHEMAGATE_ENV_DATABASE_URL": "postgres://app:s3cret@db/app"}
    with pytest.raises(MigrationParseError, match="never substituted"):
        parse(envsub_file("SELECT '${DATABASE_URL}';"), "00001_x.sql", envsub.from_process(environ))


def test_a_declared_name_without_a_value_is_unset_as_goose_has_it():
    """An optional Secret key that is absent: declared, so `${X?}` says unset, not undeclared."""
    env = envsub.from_process({"SCHEMAGATE_ENVSUB_NAMES": "TIER"})
    assert parse(envsub_file("SELECT '${TIER:-bronze}';"), "1_a.sql", env).up[0].sql == "SELECT 'bronze';"
    with pytest.raises(MigrationParseError, match=r"\$TIER: not set"):
        parse(envsub_file("SELECT '${TIER?}';"), "1_a.sql", env)


def test_the_cli_declares_with_envsub_allow_and_reads_the_name_itself():
    environ = {"APP_ROLE": "reader", "OTHER": "x", "DATABASE_URL": "postgres://a:s3cret@db/a"}
    env = envsub.from_process(environ, ["APP_ROLE", "DATABASE_URL"])
    assert parse(envsub_file("SELECT '${APP_ROLE}';"), "1_a.sql", env).up[0].sql == "SELECT 'reader';"
    for ref in ("OTHER", "DATABASE_URL"):
        with pytest.raises(MigrationParseError):
            parse(envsub_file(f"SELECT '${{{ref}}}';"), "1_a.sql", env)


def test_the_cli_without_declarations_reads_the_environment_as_before():
    env = envsub.from_process({"APP_ROLE": "reader", "DATABASE_URL": "postgres://a:s3cret@db/a",
                               "SCHEMAGATE_ENV_X": "y"})
    [stmt] = parse(envsub_file("SELECT '${APP_ROLE}', '${DATABASE_URL}', '${NOPE}', '${SCHEMAGATE_ENV_X}';"),
                   "1_a.sql", env).up
    assert stmt.sql == "SELECT 'reader', '', '', '';"


def test_migrate_up_refuses_an_undeclared_variable_before_connecting(tmp_path, monkeypatch, capsys):
    (tmp_path / "00001_role.sql").write_text(envsub_file("CREATE ROLE app PASSWORD '${APP_PW}';"))
    monkeypatch.setenv("APP_PW", "hunter2")
    argv = ["migrate", "--dir", str(tmp_path), "--database-url", "postgres://nobody@127.0.0.1:1/none", "--json",
            "--envsub-allow", "REGION", "up"]
    assert cli.main(argv) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"]["reason"] == reasons.INVALID_MIGRATIONS
    assert doc["error"]["file"] == "00001_role.sql" and doc["error"]["line"] == 3
    assert "$APP_PW is not declared" in doc["error"]["message"] and "hunter2" not in json.dumps(doc)


# --- The operator's plan ---------------------------------------------------------------------------------

def test_the_plan_checks_literal_values_and_records_the_ones_it_cannot_know():
    env = jobenv.plan_environment(spec(env=ENV, envFrom=ENV_FROM).job)
    files = {"00001_a.sql": envsub_file("SELECT '${REGION?}';"),
             "00002_b.sql": envsub_file("ALTER ROLE app PASSWORD '${APP_PW?}';\nSELECT '${CFG_TIER}', '${TIER}';"),
             "00003_c.sql": "-- +goose Up\nSELECT '${NOT_SUBSTITUTED}';\n-- +goose Down\nSELECT 1;\n"}
    loaded = load_files(files, env)
    assert loaded[0].parsed.up[0].sql == "SELECT 'eu';" and loaded[0].parsed.envsub_unchecked == ()
    assert loaded[1].parsed.envsub_unchecked == ("APP_PW", "CFG_TIER", "TIER")
    assert loaded[2].parsed.envsub_unchecked == ()
    planned = [p.migration_file(m) for m in loaded]
    doc = approval.summary(p.Inputs(name="app", namespace="team", generation=1, target=None,
                                    migrations=tuple(planned), db=p.ObservedDatabase(0)),
                           None, planned, "h", findings=[], approval=None)
    assert [m.get("envsubUnchecked") for m in doc["migrations"]] == [None, ["APP_PW", "CFG_TIER", "TIER"], None]


def test_the_plan_refuses_an_undeclared_variable_naming_the_configmap():
    class Core:
        def read_namespaced_config_map(self, name, namespace):
            from kubernetes.client import V1ConfigMap, V1ObjectMeta

            return V1ConfigMap(metadata=V1ObjectMeta(name=name),
                               data={"00001_a.sql": envsub_file("SELECT '${REGION}', '${APP_PASSWORD?}';")})

    with pytest.raises(observe.Blocked) as info:
        observe.migration_files(Core(), "team", ["m"], env=jobenv.plan_environment(spec(env=ENV).job))
    b = info.value
    assert b.reason == reasons.INVALID_MIGRATIONS
    assert "invalid migration 00001_a.sql:3" in b.message and "$APP_PASSWORD is not declared" in b.message
    assert "spec.job.env" in b.message and "(ConfigMap team/m)" in b.message


def test_through_the_reconcile_a_secret_value_is_unchecked_not_refused(monkeypatch):
    files = {**reconcile_world.FILES,
             "00003_role.sql": envsub_file("ALTER ROLE app PASSWORD '${APP_PW?}';")}
    monkeypatch.setattr(reconcile_world, "FILES", files)
    world = World(monkeypatch, spec={"job": {"env": ENV}})
    status = world.reconcile()
    assert status["phase"] == "Migrating", status
    (third,) = [m for m in status["plan"]["migrations"] if m["version"] == 3]
    assert third["envsubUnchecked"] == ["APP_PW"]


def test_through_the_reconcile_an_undeclared_variable_stalls(monkeypatch):
    files = {**reconcile_world.FILES, "00003_role.sql": envsub_file("ALTER ROLE app PASSWORD '${APP_PW?}';")}
    monkeypatch.setattr(reconcile_world, "FILES", files)
    status = World(monkeypatch).reconcile()
    (stalled,) = [c for c in status["conditions"] if c["type"] == "Stalled"]
    assert (stalled["status"], stalled["reason"]) == ("True", reasons.INVALID_MIGRATIONS)
    assert "00003_role.sql:3" in stalled["message"] and "$APP_PW is not declared" in stalled["message"]


def test_secret_values_are_what_messages_mask():
    environ = {**JOB_ENVIRON, "SCHEMAGATE_ENVSUB_REDACT": "APP_PW,CFG_*", "SCHEMAGATE_ENV_CFG_KEY": "abc"}
    env = envsub.from_process(environ)
    assert env.secret_values() == ["hunter2", "gold"]  # "abc": too short to mask; REGION: a literal


def test_declared_parses_names_and_prefixes():
    d = envsub.Declared.parse(["A", " B ", "", "CFG_*", "*", "X*Y"])
    assert d.names == frozenset({"A", "B"}) and d.prefixes == ("CFG_",)
    assert "CFG_TIER" in d and "A" in d and "C" not in d
    assert "PGHOST" not in envsub.Declared.parse(["PG*", "PGHOST"])


# --- A declared Secret or key that does not exist: the pod cannot start -----------------------------------

def test_a_pod_that_cannot_start_says_why_while_the_job_runs():
    """Not optional, absent: the kubelet holds the pod in CreateContainerConfigError until the Job's
    deadline; status says so meanwhile instead of a bare Migrating."""
    from types import SimpleNamespace

    from kubernetes import client

    from schemagate.controller import status as st

    job = client.V1Job(metadata=client.V1ObjectMeta(name="app-g1-abc", owner_references=[client.V1OwnerReference(
        api_version="schemagate.io/v1alpha1", kind="SchemaMigration", name="app", uid="u-1")]),
        status=client.V1JobStatus(active=1, ready=0))
    waiting = client.V1ContainerStateWaiting(reason="CreateContainerConfigError",
                                             message='secret "app-role" not found')
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="app-g1-abc-xyz"), status=client.V1PodStatus(
        container_statuses=[client.V1ContainerStatus(name="migrate", state=client.V1ContainerState(waiting=waiting),
                                                     image="i", image_id="", ready=False, restart_count=0)]))

    class Lister:
        def __init__(self, items):
            self.items = items

        def list_namespaced_job(self, namespace, label_selector=""):
            return SimpleNamespace(items=self.items)

        def list_namespaced_pod(self, namespace, label_selector):
            return SimpleNamespace(items=self.items)

    (found,) = observe.jobs(Lister([job]), Lister([pod]), "team", "app", "u-1")
    assert (found.state.phase, found.state.message) == ("Running", 'CreateContainerConfigError: secret "app-role" not found')
    inputs = p.Inputs(name="app", namespace="team", generation=1, target=None,
                      migrations=tuple(p.migration_file(m) for m in load_files({"00001_a.sql": envsub_file("SELECT 1;")},
                                                                               {})),
                      db=p.ObservedDatabase(0), jobs=(p.JobState("app-g1-abc", "Running", None, found.state.message),))
    action = p.plan(inputs)
    assert isinstance(action, p.WaitForJob) and action.waiting == found.state.message
    phase, conds, _ = st.for_action(action, inputs.db)
    assert phase == "Migrating"
    (reconciling,) = [c for c in conds if c.type == "Reconciling"]
    assert 'its pod cannot start: CreateContainerConfigError: secret "app-role" not found' in reconciling.message
