"""kopf wiring of the rollout gate: which SchemaMigration gates which Deployment (an index), and pod
events that ask that SchemaMigration to look at its gated pods again. Thin on purpose.

Pods cannot be filtered by readinessGates on the server, so every pod event in the watched namespaces
arrives here; the `when` filter drops pods without our gate before any work is done.
"""

from __future__ import annotations

from typing import Any, Mapping

import kopf

from schemagate.api import v1alpha1 as api
from schemagate.controller import gate


@kopf.index(api.GROUP, api.VERSION, api.PLURAL)
def gated_deployments(namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any
                      ) -> dict[tuple[str, str], str]:
    """(namespace, Deployment) → the SchemaMigration(s) naming it in spec.rolloutGate.deployments.

    kopf fills indices before it runs other handlers, so a pod event right after a restart finds its
    SchemaMigration."""
    deployments = ((spec or {}).get("rolloutGate") or {}).get("deployments") or []
    if not namespace or not isinstance(deployments, list):
        return {}
    return {(namespace, str(d)): name for d in deployments}


def _has_gate(spec: Mapping[str, Any], **_: Any) -> bool:
    return gate.is_gated(spec)


@kopf.on.event("v1", "pods", when=_has_gate)
async def gated_pod_event(type: str, body: kopf.Body, namespace: str | None, memo: Any, **kwargs: Any) -> None:
    index: kopf.Index[tuple[str, str], str] = kwargs["gated_deployments"]  # kopf passes indices by name
    if not namespace:
        return
    deployment = gate.deployment_of(body.get("metadata") or {})
    if deployment is None:
        return
    # An open gate never closes again: such a pod needs nothing, except to be counted out when deleted.
    if type != "DELETED" and (gate.condition(body) or {}).get("status") == "True":
        return
    controller = memo.get("controller")
    if controller is None:
        return
    for migration in index.get((namespace, deployment), []):
        controller.trigger(namespace, migration)
