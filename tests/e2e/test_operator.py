"""The operator end to end on the real node: its chart's pod, migration Jobs of our image, PostgreSQL, kubectl."""

from __future__ import annotations

import json
import time

import pytest

from kube_fixtures import wait_until
from migration_files import ORDERS_BROKEN as V2_BROKEN
from migration_files import ORDERS_OF_USERS as V2
from migration_files import SLOW_FIRST as SLOW
from migration_files import STATEMENT_BEFORE_UP
from migration_files import USERS as V1
from schemagate.lease import held_lease

pytestmark = pytest.mark.e2e


def test_fresh_database_becomes_ready_and_kubectl_shows_it(app):
    app.secret(app.database_url)
    app.migrations({**V1, **V2})
    app.schemamigration()
    status = app.wait_ready(2)

    app.kubectl("wait", "--for=condition=Ready", "smig/app", "--timeout=10s")
    row = app.kubectl("get", "smig", "app", "--no-headers").stdout.split()
    assert row[:5] == ["app", "2", "2", "Ready", "True"]
    header = app.kubectl("get", "schemamigrations", "-o", "wide").stdout.splitlines()[0].split()
    assert header == ["NAME", "CURRENT", "TARGET", "PHASE", "READY", "AGE", "REASON", "MESSAGE"]
    assert app.db_versions() == [1, 2] and app.table_exists("orders")
    last = app.last_job()
    assert last["outcome"] == "Succeeded" and last["versionAfter"] == 2 and last["versionBefore"] == 0
    assert status["observedGeneration"] == app.get()["metadata"]["generation"]
    (job,) = app.jobs()
    assert job["metadata"]["ownerReferences"][0]["kind"] == "SchemaMigration"
    # The Job's pod ran on the node, from our image, and `kubectl logs job/…` is the runner's JSON result.
    [pod] = json.loads(app.kubectl("get", "pods", "-l", f"job-name={job['metadata']['name']}", "-o", "json").stdout)["items"]
    assert pod["spec"]["containers"][0]["image"] == app.kube.image
    if app.kube.local:
        assert pod["spec"]["nodeName"] == "schemagate-node"
        assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    print(app.kubectl("get", "pods", "-o", "wide").stdout)
    # stderr's progress lines, then the --json document on stdout (no stray line from the client library).
    log = app.kubectl("logs", f"job/{job['metadata']['name']}").stdout
    progress, _, document = log.partition("\n{")
    assert all(line.startswith("schemagate: ") for line in progress.splitlines()), log
    assert "schemagate: OK   00002_orders.sql" in progress
    result = json.loads("{" + document)
    assert result["ok"] and result["versionAfter"] == 2
    assert [a["version"] for a in result["applied"]] == [1, 2]
    reasons = app.kubectl("get", "events", "--field-selector", "involvedObject.name=app",
                          "-o", "jsonpath={.items[*].reason}").stdout.split()
    assert "MigrationStarted" in reasons and "MigrationSucceeded" in reasons


def test_added_migration_runs_a_new_job(app):
    app.secret(app.database_url)
    app.migrations(V1)
    app.schemamigration()
    app.wait_ready(1)
    app.migrations({**V1, **V2})
    app.wait_ready(2)
    assert len(app.jobs()) == 2
    history = wait_until("both runs in history", lambda: len(app.status().get("history") or []) == 2 and
                         app.status()["history"])
    assert [r["outcome"] for r in history] == ["Succeeded", "Succeeded"]
    assert app.db_versions() == [1, 2]


def test_broken_migration_stalls_with_the_sql_error_then_recovers_when_fixed(app):
    app.secret(app.database_url)
    app.migrations(V1)
    app.schemamigration()
    app.wait_ready(1)

    app.migrations({**V1, **V2_BROKEN})
    stalled = app.wait_condition("Stalled", "True", "MigrationFailed")
    for words in ("00002_orders.sql", "no_such_table", "42P01"):
        assert words in stalled["message"]
    ready = app.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "MigrationFailed")
    assert app.status()["phase"] == "Failed" and app.status()["currentVersion"] == 1
    # The failed migration's transaction left nothing behind.
    assert app.db_versions() == [1] and not app.table_exists("orders")
    assert app.kubectl("wait", "--for=condition=Ready", "smig/app", "--timeout=3s", check=False).returncode != 0

    app.migrations({**V1, **V2})
    app.wait_ready(2)
    # One Job per plan: the broken one ran once, no retries in between.
    assert len(app.jobs()) == 3 and app.db_versions() == [1, 2]


def test_retry_annotation_runs_the_same_plan_again(app):
    app.secret(app.database_url)
    app.migrations({**V1, **V2_BROKEN})
    app.schemamigration()
    app.wait_condition("Stalled", "True", "MigrationFailed")
    assert app.db_versions() == [1]
    # Someone fixes the database by hand (the missing table), then asks for one more try.
    import psycopg
    with psycopg.connect(app.database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE no_such_table (id int)")
    app.kubectl("annotate", "smig/app", "schemagate.io/retry=1")
    app.wait_ready(2)
    assert len(app.jobs()) == 2


def test_invalid_migration_file_stalls_without_a_job(app):
    app.secret(app.database_url)
    app.migrations({**V1, **STATEMENT_BEFORE_UP})
    app.schemamigration()
    stalled = app.wait_condition("Stalled", "True", "InvalidMigrations")
    assert "00002_bad.sql" in stalled["message"] and ":1" in stalled["message"]
    assert app.jobs() == [] and app.db_versions() == []


def test_schema_split_across_two_configmaps(app):
    app.secret(app.database_url)
    app.migrations(V1, name="schema-part-1")
    app.migrations(V2, name="schema-part-2")
    app.schemamigration(config_maps=("schema-part-1", "schema-part-2"))
    app.wait_ready(2)
    assert app.db_versions() == [1, 2]


def test_same_file_in_two_configmaps_is_refused(app):
    app.secret(app.database_url)
    app.migrations(V1, name="part-1")
    app.migrations(V1, name="part-2")
    app.schemamigration(config_maps=("part-1", "part-2"))
    stalled = app.wait_condition("Stalled", "True", "InvalidMigrations")
    assert "00001_users.sql" in stalled["message"] and "part-1" in stalled["message"]
    assert app.jobs() == []


def test_missing_secret_then_created(app):
    app.migrations(V1)
    app.schemamigration()
    stalled = app.wait_condition("Stalled", "True", "SecretNotFound")
    assert f"Secret {app.namespace}/app-db not found" in stalled["message"]
    app.secret(app.database_url)
    app.wait_ready(1)


def test_wrong_password_then_fixed(app, postgres_server):
    wrong = app.database_url.replace(f":{postgres_server.password}@", ":not-the-password@")
    assert wrong != app.database_url
    app.secret(wrong)
    app.migrations(V1)
    app.schemamigration()
    stalled = app.wait_condition("Stalled", "True", "AuthenticationFailed")
    assert "not-the-password" not in stalled["message"]
    app.secret(app.database_url)
    app.wait_ready(1)


def test_unreachable_database_then_fixed(app, postgres_server):
    from devenv.postgres import free_port

    nowhere = app.database_url.rsplit("@", 1)[0] + f"@127.0.0.1:{free_port()}/nothing"
    app.secret(nowhere)
    app.migrations(V1)
    app.schemamigration()
    stalled = app.wait_condition("Stalled", "True", "ConnectionFailed")
    assert "127.0.0.1" in stalled["message"] and postgres_server.password not in stalled["message"]
    app.secret(app.database_url)
    app.wait_ready(1)


def test_two_schemamigrations_on_one_database_serialise_through_the_lease(app):
    app.secret(app.database_url)
    app.migrations({**V1, **V2})
    # Someone else holds the database's Lease: both wait, naming the holder, and start no Job.
    from schemagate.lease import lease_name
    from schemagate.migrate.dburl import describe

    where = describe(app.database_url, env={})
    name = lease_name(where.host, where.port, where.name, "goose_db_version")
    with held_lease(name=name, namespace=app.namespace, holder="someone/else", duration_seconds=60,
                    api_client=app.kube.api):
        app.schemamigration(name="first")
        app.schemamigration(name="second")
        for smig in ("first", "second"):
            waiting = app.wait_condition("Reconciling", "True", "WaitingForLease", name=smig)
            assert "someone/else" in waiting["message"]
            assert app.status(smig)["leaseHolder"] == "someone/else" and app.status(smig)["phase"] == "Waiting"
        assert app.jobs("first") == [] and app.jobs("second") == []
    app.wait_ready(2, name="first")
    app.wait_ready(2, name="second")
    assert app.db_versions() == [1, 2]  # each migration applied once


def test_stale_lease_holder_is_taken_over(app, kube):
    app.secret(app.database_url)
    app.migrations(V1)
    from schemagate.lease import lease_name
    from schemagate.migrate.dburl import describe

    where = describe(app.database_url, env={})
    name = lease_name(where.host, where.port, where.name, "goose_db_version")
    # A holder that vanished: renewed long ago, never released.
    app.apply({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
               "spec": {"holderIdentity": "gone/job", "leaseDurationSeconds": 5,
                        "renewTime": "2020-01-01T00:00:00.000000Z"}})
    app.schemamigration()
    app.wait_ready(1)
    # The Job really took the Lease over (one transition) and gave it back, rather than ignoring it.
    def released() -> dict | None:
        spec = json.loads(app.kubectl("get", "lease", name, "-o", "json").stdout)["spec"]
        return spec if not spec.get("holderIdentity") else None

    spec = wait_until("the Lease released by the Job", released)
    assert spec["leaseTransitions"] == 1


def test_operator_killed_mid_job_creates_no_duplicate(own_app):
    app, operator = own_app, own_app.operator
    app.secret(app.database_url)
    app.migrations(SLOW)
    app.schemamigration()
    wait_until("the migration Job", lambda: app.jobs(), timeout=60)
    operator.kill()
    try:
        time.sleep(1)
    finally:
        operator.start()
    app.wait_ready(1)
    assert len(app.jobs()) == 1
    assert app.db_versions() == [1]
    history = wait_until("the run in history", lambda: app.status().get("history"))
    assert len(history) == 1 and history[0]["outcome"] == "Succeeded"


def test_two_schemamigrations_started_together_apply_each_migration_once(app):
    app.secret(app.database_url)
    app.migrations({**SLOW, **{"00002_orders.sql": V2["00002_orders.sql"].replace("REFERENCES users", "")}})
    app.schemamigration(name="first")
    app.schemamigration(name="second")
    app.wait_ready(2, name="first")
    app.wait_ready(2, name="second")
    assert app.db_versions() == [1, 2]


def test_migrations_from_an_image_are_copied_by_an_init_container(app):
    image = app.kube.load_image("localhost/app-migrations:v2", {
        "00001_users.sql": V1["00001_users.sql"], "00002_orders.sql": V2["00002_orders.sql"],
        "notes.txt": "not a migration"}, "/migrations")
    app.secret(app.database_url)
    app.apply({"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration", "metadata": {"name": "app"},
               "spec": {"database": {"secretRef": {"name": "app-db"}},
                        "source": {"image": {"image": image, "path": "/migrations"}}}})
    app.wait_ready(2)
    assert app.db_versions() == [1, 2]
    (job,) = app.jobs()
    assert job["spec"]["template"]["spec"]["initContainers"][0]["image"] == image


def test_explicit_target_version_then_raised(app):
    app.secret(app.database_url)
    app.migrations({**V1, **V2})
    app.schemamigration(targetVersion=1)
    status = app.wait_ready(1)
    assert status["pending"] == 0 and app.db_versions() == [1]
    app.schemamigration(targetVersion="2")
    app.wait_ready(2)
    assert app.db_versions() == [1, 2]
    assert {j["metadata"]["labels"]["schemagate.io/generation"] for j in app.jobs()} == {"1", "2"}


def test_edited_applied_migration_is_detected_not_ignored(app):
    app.secret(app.database_url)
    app.migrations(V1)
    app.schemamigration()
    app.wait_ready(1)
    app.migrations({"00001_users.sql": V1["00001_users.sql"].replace("PRIMARY KEY", "PRIMARY KEY, name text")})
    stalled = app.wait_condition("Stalled", "True", "ChecksumMismatch")
    assert "00001_users.sql" in stalled["message"]
    assert app.db_versions() == [1]


def test_missing_configmap_then_created(app):
    app.secret(app.database_url)
    app.schemamigration()
    stalled = app.wait_condition("Stalled", "True", "SourceNotFound")
    assert f"ConfigMap {app.namespace}/app-migrations not found" in stalled["message"]
    app.migrations(V1)
    app.wait_ready(1)


def test_a_job_left_by_a_deleted_schemamigration_of_the_same_name_is_not_adopted(app):
    app.secret(app.database_url)
    app.migrations({**V1, **V2_BROKEN})
    app.schemamigration()
    app.wait_condition("Stalled", "True", "MigrationFailed")
    (job,) = app.jobs()
    name, first_uid = job["metadata"]["name"], app.get()["metadata"]["uid"]
    # Deleted keeping its Job (as an orphan), then re-created: the same plan, so the same Job name. While
    # the orphan finalizer holds the object its generation is bumped: that is no reason to run again.
    app.kubectl("delete", "smig/app", "--cascade=orphan", "--wait=true")
    assert len(app.jobs()) == 1
    app.schemamigration()
    stalled = app.wait_condition("Stalled", "True", "JobConflict")
    assert f"Job {app.namespace}/{name} already exists" in stalled["message"] and "nothing was run" in stalled["message"]
    assert "currentJob" not in app.status() and len(app.jobs()) == 1

    app.kubectl("delete", "job", name, "--wait=true")
    uid = app.get()["metadata"]["uid"]
    assert uid != first_uid
    owned = wait_until("the new object's own Job", lambda: [j for j in app.jobs() if
                                                           j["metadata"]["ownerReferences"][0]["uid"] == uid])
    assert owned[0]["metadata"]["name"] == name
    app.wait_condition("Stalled", "True", "MigrationFailed")


def test_a_job_the_apiserver_refuses_stalls_with_its_message(app):
    app.secret(app.database_url)
    app.migrations(V1)
    app.schemamigration(job={"resources": {"limits": {"cpu": "1x"}}})  # passes the CRD, not Job validation
    stalled = app.wait_condition("Stalled", "True", "JobRejected")
    assert "cannot create Job" in stalled["message"] and "quantities must match" in stalled["message"]
    assert "nothing was run" in stalled["message"]
    assert app.jobs() == [] and app.db_versions() == []
    app.schemamigration(job={"resources": {"limits": {"cpu": "1"}}})
    app.wait_ready(1)
