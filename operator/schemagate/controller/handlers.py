"""kopf wiring: settings at startup, watch events → per-object triggers. Thin on purpose."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes.client.rest import ApiException

from schemagate.api import v1alpha1 as api
from schemagate.controller import gate_handlers  # noqa: F401  (registers the rollout gate's handlers)
from schemagate.controller import jobs as jobs_mod
from schemagate.controller.loop import Controller, Key
from schemagate.controller.reconcile import Clients, Options, reconcile

log = logging.getLogger(__name__)

@dataclass
class Config:
    """Set by main before kopf starts; read at startup."""

    namespaces: list[str] = field(default_factory=list)
    resync_seconds: float = 30.0
    options: Options = field(default_factory=Options)


CONFIG = Config()


def _lister(k: Clients, namespaces: list[str]) -> Callable[[], list[Key]]:
    def list_keys() -> list[Key]:
        items: list[dict[str, Any]] = []
        if namespaces:
            for ns in namespaces:
                try:
                    found: Any = k.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, ns, api.PLURAL)
                except ApiException as exc:
                    # One namespace deleted (its Role with it) or not granted must not stop the resync of
                    # the others.
                    log.warning("resync: cannot list SchemaMigrations in namespace %s (%s %s); the others go on",
                                ns, exc.status, exc.reason)
                    continue
                items += found["items"]
        else:
            found = k.custom.list_cluster_custom_object(api.GROUP, api.VERSION, api.PLURAL)
            items = found["items"]
        return [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items]
    return list_keys


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    from schemagate import kube

    # kopf's own bookkeeping under our prefix, never kopf.zalando.org; we keep nothing in it anyway
    # (only event handlers), but a future change handler must not leak the default.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=api.GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = f"{api.GROUP}/finalizer"
    settings.posting.level = logging.WARNING
    # Namespaces are given by exact name and the CRD is installed beforehand, so kopf need not list/watch
    # namespaces or CRDs cluster-wide, a right the Helm chart's namespaced Roles do not grant (kopf would
    # otherwise retry 403s for a minute at every start before falling back to the same behaviour).
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    k = Clients(kube.api_client())
    options = CONFIG.options
    controller = Controller(lambda ns, name: reconcile(k, ns, name, options),
                            _lister(k, list(CONFIG.namespaces)), CONFIG.resync_seconds)
    memo["controller"] = controller
    controller.start()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        await controller.stop()


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def schemamigration_event(type: str, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    controller: Controller = memo["controller"]
    if namespace is None:
        return
    if type == "DELETED":
        controller.forget(namespace, name)
        return
    controller.trigger(namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels={jobs_mod.LABEL_MANAGED_BY: jobs_mod.MANAGED_BY})
async def job_event(labels: Mapping[str, str], namespace: str | None, memo: Any, **_: Any) -> None:
    owner = labels.get(jobs_mod.LABEL_MIGRATION)
    if owner and namespace:
        memo["controller"].trigger(namespace, owner)


@kopf.on.event("coordination.k8s.io", "v1", "leases", labels={jobs_mod.LABEL_MANAGED_BY: jobs_mod.MANAGED_BY})
async def lease_event(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    if namespace:
        memo["controller"].trigger_lease(namespace, name)
