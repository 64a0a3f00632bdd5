"""kopf wiring of the rollout gate: which SchemaMigration gates which Deployment or StatefulSet (an index),
pod events that ask that SchemaMigration to look at its gated pods again, and the release of the held
pods of a deleted SchemaMigration. Thin on purpose.

Pods cannot be filtered by readinessGates on the server, so every pod event in the watched namespaces
arrives here; the `when` filter drops pods without our gate before any work is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf

from schemagate import kube
from schemagate.api import v1alpha1 as api
from schemagate.controller import gate, gate_reconcile
from schemagate.kube import Clients


@kopf.index(api.GROUP, api.VERSION, api.PLURAL)
def gated_workloads(namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any
                    ) -> dict[tuple[str, str, str], str]:
    """(namespace, kind, workload) → the SchemaMigration(s) naming it in spec.rolloutGate.

    kopf fills indices before it runs other handlers, so a pod event right after a restart finds its
    SchemaMigration."""
    rollout_gate = (spec or {}).get("rolloutGate") or {}
    if not namespace:
        return {}
    out: dict[tuple[str, str, str], str] = {}
    for kind, field_name in gate.FIELDS.items():
        workloads = rollout_gate.get(field_name) or []
        for w in workloads if isinstance(workloads, list) else []:
            out[(namespace, kind, str(w))] = name
    return out


def _has_gate(spec: Mapping[str, Any], **_: Any) -> bool:
    return gate.is_gated(spec)


@kopf.on.event("v1", "pods", when=_has_gate)
async def gated_pod_event(type: str, body: kopf.Body, namespace: str | None, memo: Any, **kwargs: Any) -> None:
    index: kopf.Index[tuple[str, str, str], str] = kwargs["gated_workloads"]  # kopf passes indices by name
    if not namespace:
        return
    workload = gate.workload_of(body.get("metadata") or {})
    if workload is None:
        return
    # An open gate never closes again: such a pod needs nothing, except to be counted out when deleted.
    if type != "DELETED" and (gate.condition(body) or {}).get("status") == "True":
        return
    controller = memo.get("controller")
    if controller is None:
        return
    for migration in index.get((namespace, *workload), []):
        controller.trigger(namespace, migration)


def _release_deleted(body: dict[str, Any]) -> None:
    k = Clients(kube.api_client())
    gate_reconcile.post_events(k, gate_reconcile.release_deleted(k, body))


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def gating_migration_deleted(type: str, body: kopf.Body, **_: Any) -> None:
    """A deleted SchemaMigration decides no pod again: its held pods are released (gate.release). Seen
    only while the operator runs; a deletion it missed leaves them held (docs/rollout-gate.md)."""
    if type != "DELETED":
        return
    obj = dict(body)
    if not ((obj.get("spec") or {}).get("rolloutGate") or (obj.get("status") or {}).get("rolloutGate")):
        return
    await asyncio.to_thread(_release_deleted, obj)
