"""No Secret content in any message: whatever a SchemaMigration's secretRef points at (a token, another
app's config), its value never reaches status, Events or logs — not even through libpq's errors."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import psycopg
import pytest

from schemagate.api.v1alpha1 import SchemaMigrationSpec
from schemagate.controller import observe

SPEC = SchemaMigrationSpec.model_validate({"database": {"secretRef": {"name": "ci-github-token", "key": "token"}},
                                           "source": {"configMaps": ["m"]}})
TOKEN = "ghp_R2VuZXJhdGVkVG9rZW5Gb3JUZXN0aW5nT25seQ"


class FakeCore:
    def __init__(self, value: str):
        self.data = {"token": base64.b64encode(value.encode()).decode()}

    def read_namespaced_secret(self, name: str, namespace: str) -> SimpleNamespace:
        return SimpleNamespace(data=self.data)


@pytest.fixture
def no_connect(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(psycopg, "connect", lambda url, **_: calls.append(url) or pytest.fail("dialled"))
    return calls


@pytest.mark.parametrize("value", [
    TOKEN,
    f"{TOKEN} trailing words",
    "user=app password='s3cr3t-value host=db",  # libpq would quote the unterminated part
    '{"auths": {"ghcr.io": {"auth": "c2VjcmV0LXZhbHVl"}}}',
    "postgres://app:s3cr%zzet@db/app",  # an undecodable escape: libpq's error quotes the password
])
def test_a_value_libpq_cannot_parse_is_not_a_url_and_is_never_quoted(value, no_connect):
    with pytest.raises(observe.Blocked) as err:
        observe.database(FakeCore(value), "team", SPEC)
    assert err.value.reason == "InvalidDatabaseURL"
    assert err.value.message.startswith("Secret team/ci-github-token key 'token' is not a PostgreSQL URL")
    for part in value.replace("'", " ").replace('"', " ").split():
        if len(part) > 6:
            assert part not in err.value.message
    assert no_connect == []


def test_a_connect_error_quoting_the_whole_value_is_redacted(monkeypatch):
    value = "host=db.example dbname=app user=app sslmode=require options=-csearch_path=hidden_schema_xyz"
    db = observe.database(FakeCore(value), "team", SPEC)

    def refuse(url: str, **_: object) -> None:
        raise psycopg.OperationalError(f'connection failed for "{url}": server closed the connection')

    monkeypatch.setattr(psycopg, "connect", refuse)
    with pytest.raises(observe.Blocked) as err:
        observe.database_state(db)
    assert err.value.reason == "ConnectionFailed"
    assert "hidden_schema_xyz" not in err.value.message and value not in err.value.message
    assert "db.example:5432/app" in err.value.message  # what the operator says on purpose: host, port, database


@pytest.mark.parametrize("value,allowed", [
    ("postgres://app:pw@db.prod.internal:5432/app", True),
    ("postgres://app:pw@replica.db.prod.internal/app", True),  # *.db.prod.internal
    ("postgres://app:pw@kube-dns.kube-system:53/app", False),
    ("host=db.prod.internal hostaddr=10.96.0.1 dbname=app", False),  # libpq dials hostaddr
    ("postgres://app:pw@db.prod.internal,evil.example/app", False),
    ("dbname=app", False),  # no host: localhost, the operator's own pod
])
def test_an_allowlist_of_database_hosts_is_checked_before_anything_dials(value, allowed, no_connect):
    hosts = ("db.prod.internal", "*.db.prod.internal")
    if allowed:
        assert observe.database(FakeCore(value), "team", SPEC, hosts).host.endswith("db.prod.internal")
        return
    with pytest.raises(observe.Blocked) as err:
        observe.database(FakeCore(value), "team", SPEC, hosts)
    assert err.value.reason == "DatabaseNotAllowed"
    assert "databases.allowedHosts" in err.value.message and "nothing was dialled" in err.value.message
    assert "pw" not in err.value.message.replace("allowed", "")
    assert no_connect == []


def test_without_an_allowlist_any_host_is_dialled():
    assert observe.database(FakeCore("postgres://u@anywhere.example/app"), "team", SPEC).host == "anywhere.example"


@pytest.mark.parametrize("value", [
    "ghp_R2VuZXJhdGVkVG9rZW5Gb3JUZXN0aW5nT25seQ trailing words",  # libpq quotes the first word only
    "user=app ghp_R2VuZXJhdGVkVG9rZW5Gb3JUZXN0aW5nT25seQ",
    "postgres://app:pw@db/app?token_R2VuZXJhdGVkVG9r=1",
])
def test_the_runner_says_malformed_without_quoting_the_value(value):
    """The Job gets the same Secret through secretKeyRef; its termination message ends up in status."""
    from schemagate.migrate import runner
    from schemagate.migrate.errors import MigrateError

    with pytest.raises(MigrateError) as err:
        runner.connect(value)
    assert err.value.message.startswith("the database URL is malformed: ")
    assert "R2VuZXJhdGVkVG9r" not in err.value.message, err.value.message
