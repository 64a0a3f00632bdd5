"""kopf wiring of SchemaMigrationSets: their own work queue and resync (controller/loop.py), triggered by
the set's events, its children's, and its gated pods'. Thin on purpose.

Secrets are not watched (that would need list/watch on every Secret of the namespace): a Secret labelled
into or out of a set's selector is seen at the next resync (--resync-seconds).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from schemagate.api import migrationset as set_api
from schemagate.api import v1alpha1 as api
from schemagate.controller import config as config_mod
from schemagate.controller import fleet_reconcile, gate
from schemagate.controller.loop import Controller, LeadingController, Watched
from schemagate.kube import Clients

log = logging.getLogger(__name__)

MEMO_KEY = "fleet"


WATCHED_KEY = "fleet_watched"


def make_controller(memo: Any, k: Clients, cfg: config_mod.Config) -> None:
    """Into memo: the SchemaMigrationSets' own queue, and the sets as watched for its resync. handlers.startup
    makes it and starts it with the SchemaMigrations' once this replica leads (both replicas would otherwise
    write the same objects)."""
    watched = memo[WATCHED_KEY] = Watched()
    memo[MEMO_KEY] = LeadingController(lambda ns, name, _watched: fleet_reconcile.reconcile(k, ns, name, cfg.options),
                                       watched.objects, cfg.resync_seconds)


def _trigger(memo: Any, namespace: str | None, name: str | None) -> None:
    controller: Controller | None = memo.get(MEMO_KEY)
    if controller is not None and namespace and name:
        controller.trigger(namespace, name)


@kopf.on.event(api.GROUP, api.VERSION, set_api.PLURAL)
async def schemamigrationset_event(type: str, body: kopf.Body, namespace: str | None, name: str, memo: Any,
                                   **_: Any) -> None:
    watched: Watched | None = memo.get(WATCHED_KEY)
    if watched is not None:
        watched.saw(type, body)
    if type != "DELETED":
        _trigger(memo, namespace, name)


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL, labels={set_api.SET_LABEL: kopf.PRESENT})
async def child_event(body: kopf.Body, namespace: str | None, memo: Any, **_: Any) -> None:
    """A child's status moved: its set decides whether the next database may start."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == set_api.KIND and ref.get("controller"):
            _trigger(memo, namespace, ref.get("name"))


@kopf.index(api.GROUP, api.VERSION, set_api.PLURAL)
def set_gated_deployments(namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any
                          ) -> dict[tuple[str, str], str]:
    """(namespace, Deployment) → the SchemaMigrationSet(s) naming it in spec.rolloutGate.deployments."""
    deployments = ((spec or {}).get("rolloutGate") or {}).get("deployments") or []
    if not namespace or not isinstance(deployments, list):
        return {}
    return {(namespace, str(d)): name for d in deployments}


def _has_gate(spec: Mapping[str, Any], **_: Any) -> bool:
    return gate.is_gated(spec)


@kopf.on.event("v1", "pods", when=_has_gate)
async def set_gated_pod_event(type: str, body: kopf.Body, namespace: str | None, memo: Any, **kwargs: Any) -> None:
    index: kopf.Index[tuple[str, str], str] = kwargs["set_gated_deployments"]  # kopf passes indices by name
    deployment = gate.deployment_of(body.get("metadata") or {})
    if not namespace or deployment is None:
        return
    if type != "DELETED" and (gate.condition(body) or {}).get("status") == "True":
        return
    for name in index.get((namespace, deployment), []):
        _trigger(memo, namespace, name)
