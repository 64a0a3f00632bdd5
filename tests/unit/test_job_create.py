"""Creating the plan's Job: an apiserver refusal is a Stalled reason with the apiserver's words."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from kubernetes.client.exceptions import ApiException

from schemagate.api.v1alpha1 import SchemaMigrationSpec
from schemagate.controller import observe
from schemagate.controller import decide as p
from schemagate.controller.config import Options
from schemagate.controller.act import create_job as _create_job

OBJ = {"metadata": {"name": "app", "namespace": "team", "uid": "u-1", "generation": 1}}
SPEC = SchemaMigrationSpec.model_validate({"database": {"secretRef": {"name": "db"}},
                                           "source": {"configMaps": ["m"]},
                                           "job": {"resources": {"limits": {"cpu": "1x"}}}})
RUN = p.StartJob("app-g1-abcdef12", "abcdef12", 2, 2)


class Batch:
    def __init__(self, error: ApiException | None):
        self.error = error

    def create_namespaced_job(self, namespace: str, body: dict) -> None:
        if self.error:
            raise self.error


def _refused(status: int, message: str) -> ApiException:
    e = ApiException(status=status, reason="Unprocessable Entity")
    e.body = json.dumps({"kind": "Status", "message": message})
    return e


def test_an_invalid_job_is_stalled_naming_the_field():
    message = ('Job.batch "app-g1-abcdef12" is invalid: spec.template.spec.containers[0].resources.limits[cpu]: '
               'Invalid value: "1x": must match the regex')
    with pytest.raises(observe.Blocked) as err:
        _create_job(SimpleNamespace(batch=Batch(_refused(422, message))), OBJ, SPEC, RUN, lease_name="l", retry=None,
                    opts=Options())
    assert err.value.reason == "JobRejected"
    assert "cannot create Job team/app-g1-abcdef12" in err.value.message and "limits[cpu]" in err.value.message


def test_an_existing_job_is_reported_and_other_errors_propagate():
    assert _create_job(SimpleNamespace(batch=Batch(ApiException(status=409))), OBJ, SPEC, RUN, lease_name="l",
                       retry=None, opts=Options()) is False
    with pytest.raises(ApiException):
        _create_job(SimpleNamespace(batch=Batch(ApiException(status=500))), OBJ, SPEC, RUN, lease_name="l",
                    retry=None, opts=Options())
    assert _create_job(SimpleNamespace(batch=Batch(None)), OBJ, SPEC, RUN, lease_name="l", retry=None,
                       opts=Options()) is True
