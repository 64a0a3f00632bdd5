"""What the reconcile reads before planning: a bad Secret value is a clear Stalled reason, not a crash."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import pytest

from schemagate.api.v1alpha1 import SchemaMigrationSpec
from schemagate.controller import observe

SPEC = SchemaMigrationSpec.model_validate({"database": {"secretRef": {"name": "app-db"}},
                                           "source": {"configMaps": ["m"]}})


class FakeCore:
    def __init__(self, value: bytes):
        self.data = {"url": base64.b64encode(value).decode()}

    def read_namespaced_secret(self, name: str, namespace: str) -> SimpleNamespace:
        return SimpleNamespace(data=self.data)


@pytest.mark.parametrize("value, words", [
    (b"\xff\xfepostgres://u:s3cret@db/app", "is not text"),
    (b"  \n", "is empty"),
])
def test_a_secret_value_that_is_no_url_blocks_naming_the_secret_and_key(value, words):
    with pytest.raises(observe.Blocked) as err:
        observe.database(FakeCore(value), "team", SPEC)
    assert err.value.reason == "SecretNotFound"
    assert f"Secret team/app-db key 'url' {words}" in err.value.message and "s3cret" not in err.value.message


def test_a_url_is_read_without_showing_it():
    db = observe.database(FakeCore(b"postgres://u:s3cret@db.example:6543/app\n"), "team", SPEC)
    assert (db.host, db.port, db.name, db.table) == ("db.example", 6543, "app", "goose_db_version")
    assert "s3cret" not in repr(db)


class FakeJobs:
    def __init__(self, jobs: list):
        self.items = jobs

    def list_namespaced_job(self, namespace: str, label_selector: str) -> SimpleNamespace:
        return SimpleNamespace(items=self.items)


class FakePods:
    def __init__(self, pods: list):
        self.items = pods

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> SimpleNamespace:
        return SimpleNamespace(items=self.items)


def _failed_job(reason: str, message: str):
    from kubernetes import client

    return client.V1Job(
        metadata=client.V1ObjectMeta(name="app-g1-abc", owner_references=[client.V1OwnerReference(
            api_version="schemagate.io/v1alpha1", kind="SchemaMigration", name="app", uid="u-1")]),
        status=client.V1JobStatus(conditions=[client.V1JobCondition(type="Failed", status="True", reason=reason,
                                                                    message=message)]))


def _killed_pod(log_tail: str):
    from kubernetes import client

    term = client.V1ContainerStateTerminated(exit_code=137, message=log_tail, reason="Error")
    return client.V1Pod(metadata=client.V1ObjectMeta(name="app-g1-abc-xyz"), status=client.V1PodStatus(
        container_statuses=[client.V1ContainerStatus(name="migrate", state=client.V1ContainerState(terminated=term),
                                                     image="i", image_id="", ready=False, restart_count=0)]))


@pytest.mark.parametrize("pods, also", [
    ([], None),  # the Job controller deleted the pod
    ([_killed_pod("applying 00002_big_index.sql\n")], "applying 00002_big_index.sql"),
])
def test_a_job_stopped_by_its_deadline_says_so(pods, also):
    from schemagate.controller.status import finished_record

    (found,) = observe.jobs(FakeJobs([_failed_job("DeadlineExceeded", "Job was active longer than specified "
                                                  "deadline")]), FakePods(pods), "team", "app", "u-1")
    record = finished_record(None, found, "2026-01-01T00:00:00Z")
    assert record["reason"] == "JobFailed"
    assert "DeadlineExceeded: Job was active longer than specified deadline" in record["message"]
    assert also is None or also in record["message"]


class FakeConfigMaps:
    def __init__(self, data: dict, binary: dict | None = None):
        self.cm = SimpleNamespace(data=data, binary_data=binary)

    def read_namespaced_config_map(self, name: str, namespace: str) -> SimpleNamespace:
        return self.cm


def test_a_migration_file_kubectl_stored_as_binary_data_is_named_not_ignored():
    ok = "-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 1;\n"
    core = FakeConfigMaps({"00001_a.sql": ok}, {"00002_b.sql": base64.b64encode(b"-- caf\xe9\n").decode()})
    with pytest.raises(observe.Blocked) as err:
        observe.migration_files(core, "team", ["app-migrations"])
    assert err.value.reason == "InvalidMigrations"
    assert "file 00002_b.sql in ConfigMap team/app-migrations is not UTF-8 text" in err.value.message
    (only,) = observe.migration_files(FakeConfigMaps({"00001_a.sql": ok}), "team", ["app-migrations"])
    assert only.version == 1


def test_a_configmap_without_any_migration_file_is_named_with_the_keys_it_holds():
    # A key spelled .SQL is no migration to goose either; the message must say which ConfigMap was read
    # and what was in it, not only "the source holds no .sql file".
    core = FakeConfigMaps({"00001_users.SQL": "-- +goose Up\nSELECT 1;\n", "README.md": "notes"})
    with pytest.raises(observe.Blocked) as err:
        observe.migration_files(core, "team", ["app-migrations"])
    assert err.value.reason == "NoMigrationFiles"
    assert "ConfigMap team/app-migrations holds no goose migration file" in err.value.message
    assert "keys found: 00001_users.SQL, README.md" in err.value.message


@pytest.mark.parametrize("url, option", [
    (b"postgres://u:s3cret@db.example:notaport/app", "port"),
    (b"postgres://u:s3cret@db.example:6543/app?connect_timeout=soon", "connect_timeout"),
])
def test_a_url_whose_port_or_timeout_is_no_number_is_refused_before_dialling(url, option):
    # libpq accepts these at parse time and fails only on connect; until then the port read as the default
    # 5432, so every message named a port that is not in the Secret.
    with pytest.raises(observe.Blocked) as err:
        observe.database(FakeCore(url), "team", SPEC)
    assert err.value.reason == "InvalidDatabaseURL"
    assert f"Secret team/app-db key 'url' is not a usable PostgreSQL URL: its {option} is not a number" \
        in err.value.message
    assert "db.example:5432" not in err.value.message and "s3cret" not in err.value.message
    for value in ("notaport", "soon"):
        assert value not in err.value.message  # Secret text is never quoted


def test_a_url_without_a_password_is_an_authentication_failure(monkeypatch):
    import psycopg

    def refuse(*_a, **_k):
        raise psycopg.OperationalError('connection to server at "db.example", port 6543 failed: '
                                       'fe_sendauth: no password supplied')

    monkeypatch.setattr(psycopg, "connect", refuse)
    db = observe.database(FakeCore(b"postgres://nobody@db.example:6543/app"), "team", SPEC)
    with pytest.raises(observe.Blocked) as err:
        observe.database_state(db)
    # As the runner classifies it (migrate/runner.connect): the fix is in the Secret's credentials.
    assert err.value.reason == "AuthenticationFailed"
    assert "cannot log in to database db.example:6543/app" in err.value.message


# --- Parser and plan messages name the ConfigMap by namespace/name, the file and the line ----------------

class NamedConfigMaps:
    def __init__(self, by_name: dict[str, dict[str, str]]):
        self.by_name = by_name

    def read_namespaced_config_map(self, name: str, namespace: str) -> Any:
        from kubernetes.client import V1ConfigMap, V1ObjectMeta

        return V1ConfigMap(metadata=V1ObjectMeta(name=name, namespace=namespace), data=self.by_name[name])


GOOD = "-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 1;\n"


@pytest.mark.parametrize("files, words", [
    ({"00001_a.sql": GOOD, "00002_b.sql": "-- +goose Up\nSELECT 1\n"},
     "invalid migration 00002_b.sql:2: failed to parse migration: state"),
    ({"00001_a.sql": "-- notes\n-- +goose Down\nSELECT 1;\n"},
     "invalid migration 00001_a.sql:2: '-- +goose Down' before any '-- +goose Up' annotation"),
    ({"00000_a.sql": GOOD}, "invalid migration 00000_a.sql: "),
    ({"00003_c.go": "package migrations\n"}, "invalid migration 00003_c.go: Go migrations are not supported"),
])
def test_a_bad_file_names_its_configmap_by_namespace_and_name_with_file_and_line(files, words):
    with pytest.raises(observe.Blocked) as err:
        observe.migration_files(NamedConfigMaps({"first": {"00009_z.sql": GOOD}, "app-migrations": files}), "team",
                                ["first", "app-migrations"])
    assert err.value.reason == "InvalidMigrations"
    assert words in err.value.message, err.value.message
    assert err.value.message.endswith("(ConfigMap team/app-migrations)"), err.value.message


def test_a_file_in_two_configmaps_names_both_by_namespace_and_name():
    with pytest.raises(observe.Blocked) as err:
        observe.migration_files(NamedConfigMaps({"a": {"00001_x.sql": GOOD}, "b": {"00001_x.sql": GOOD}}), "team",
                                ["a", "b"])
    assert err.value.message == "file 00001_x.sql is in both ConfigMap team/a and ConfigMap team/b"
