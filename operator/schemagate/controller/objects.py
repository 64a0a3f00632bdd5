"""Our own custom objects (SchemaMigration, SchemaMigrationSet) through the API: read one, write its status
once per reconcile and only when it changed, and say what the apiserver said.

Status goes out as a JSON merge patch of the whole status with no resourceVersion: it cannot conflict with
another writer's, and the Controller serialises reconciles per object, so nothing of ours races it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ValidationError

from schemagate import kube
from schemagate.api import migrationset as set_api
from schemagate.api import typed
from schemagate.api import v1alpha1 as api
from schemagate.kube import Clients

log = logging.getLogger(__name__)

# The model each kind's status is checked against: the one the CRD is generated from.
STATUS_MODELS: dict[str, type[BaseModel]] = {api.PLURAL: api.SchemaMigrationStatus,
                                             set_api.PLURAL: set_api.SchemaMigrationSetStatus}


def get(k: Clients, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The object; None when it is gone or being deleted (foreground or orphan cascade, someone's finalizer):
    the apiserver bumps the generation as it marks it, which would otherwise read as a spec change."""
    obj: Any = kube.unless_absent(
        lambda: k.custom.get_namespaced_custom_object(api.GROUP, api.VERSION, namespace, plural, name))
    if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
        return None
    found: dict[str, Any] = obj
    return found


def strip_none(d: Any) -> Any:
    """`d` without null values, nested: what a stored status compares as after a merge patch."""
    if isinstance(d, dict):
        return {k: strip_none(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [strip_none(v) for v in d]
    return d


def write_status(k: Clients, plural: str, obj: dict[str, Any], new: dict[str, Any]) -> bool:
    """Patch status to `new` when it differs from the stored one (nulls in `new` remove fields); whether it
    was written. `new` must be a status the CRD's model holds (typed.check): nothing else is written."""
    stripped = strip_none(new)
    typed.check(STATUS_MODELS[plural], stripped)
    if stripped == strip_none(obj.get("status") or {}):
        return False
    meta = obj["metadata"]
    k.custom.patch_namespaced_custom_object_status(api.GROUP, api.VERSION, meta["namespace"], plural, meta["name"],
                                                   {"status": new})
    return True


def spec_error(e: ValidationError) -> str:
    """The first validation error of a spec, as one line naming the field."""
    first = e.errors()[0]
    where = ".".join(str(x) for x in first["loc"])
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"spec.{where}: {first['msg']}{more}"


def api_message(e: ApiException) -> str:
    """The apiserver's own message (names the invalid field, the quota, the missing right)."""
    try:
        message = json.loads(e.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or f"{e.status} {e.reason}")
