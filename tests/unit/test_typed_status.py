"""The status the operator writes is held to the pydantic models the CRD is generated from."""

import pytest

from schemagate.api import conditions as c
from schemagate.api import migrationset as set_api
from schemagate.api import reasons, typed
from schemagate.api import v1alpha1 as api
from schemagate.controller import status as st


def test_a_field_the_crd_lacks_cannot_be_written():
    with pytest.raises(typed.StatusFieldError, match=r"status\.currentJob\.startedOn"):
        typed.check(api.SchemaMigrationStatus, {"currentJob": {"job": "j", "startedOn": "t"}})
    with pytest.raises(typed.StatusFieldError, match=r"status\.rolloutGate\.deployments\[0\]\.held"):
        typed.check(api.SchemaMigrationStatus, {"rolloutGate": {"deployments": [{"name": "web", "held": 1}]}})


def test_a_value_of_the_wrong_type_cannot_be_written():
    with pytest.raises(typed.StatusFieldError):
        typed.check(api.SchemaMigrationStatus, {"phase": "Sleeping"})


def test_what_compose_builds_is_a_schema_migration_status():
    new = st.compose({}, 2, "Failed", c.stalled(reasons.INVALID_SPEC, "spec.x: bad"), {"plan": None},
                     {"currentJob": None, "lastJob": None, "history": None}, None)
    typed.check(api.SchemaMigrationStatus, {k: v for k, v in new.items() if v is not None})


def test_the_set_status_has_its_own_model():
    typed.check(set_api.SchemaMigrationSetStatus, {"phase": "Ready", "databases": 2, "phases": {"Ready": 2}})
    with pytest.raises(typed.StatusFieldError):
        typed.check(set_api.SchemaMigrationSetStatus, {"currentJob": {"job": "j"}})
