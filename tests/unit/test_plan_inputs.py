"""What the reconcile reads before planning: a bad Secret value is a clear Stalled reason, not a crash."""

from __future__ import annotations

import base64
from types import SimpleNamespace

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
