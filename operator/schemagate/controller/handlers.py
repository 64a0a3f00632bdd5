"""kopf wiring: settings at startup, watch events → per-object triggers. Thin on purpose."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from schemagate import kube, logs
from schemagate import lease as lease_mod
from schemagate.api import v1alpha1 as api
from schemagate.controller import (
    backoff,
    config,
    fleet_handlers,
    gate_handlers,  # noqa: F401  (registers the rollout gate's handlers)
    leader,
    metrics,
    resync,
    watchdog,
)
from schemagate.controller import jobs as jobs_mod
from schemagate.controller.loop import Controller, LeadingController, Listed, Watched
from schemagate.controller.reconcile import reconcile
from schemagate.kube import Clients

log = logging.getLogger(__name__)




def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    """`fn` on the event loop, from the elector's thread."""
    loop.call_soon_threadsafe(fn)


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for this operator (no I/O: the startup handler calls it first)."""
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
    settings.networking.error_backoffs = backoff.Jittered()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


WATCHERS = watchdog.Watchers()


@kopf.on.probe(id="watch_streams")
async def watch_streams(**_: Any) -> int:
    """Liveness: every list-and-watch stream alive (controller/watchdog.py); the number of them."""
    WATCHERS.sample(asyncio.all_tasks())
    dead = WATCHERS.dead()
    if dead:
        log.error("kopf has given up %d watch stream(s), e.g. %s: failing liveness so the kubelet restarts "
                  "this replica", len(dead), ", ".join(dead[:3]))
        raise kopf.PermanentError(f"{len(dead)} watch stream(s) ended: {', '.join(dead[:3])}")
    return WATCHERS.alive()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_kopf(settings)
    memo["sampler_task"] = asyncio.get_running_loop().create_task(WATCHERS.sample_forever(),
                                                                  name="watch-stream sampler")
    api_client = kube.api_client()
    k = Clients(api_client)
    options = config.CONFIG.options

    resyncs = resync.Resyncs(config.CONFIG.full_resync_seconds, time.monotonic)
    memo["resyncs"] = resyncs

    def config_map_version(namespace: str, name: str, metadata_only: bool) -> resync.ConfigMapVersion:
        return resync.read_config_map_version(k.core, namespace, name, metadata_only=metadata_only)

    def work(namespace: str, name: str, listed: Listed | None) -> str | None:
        key = (namespace, name)
        fingerprint = None
        if listed is not None:
            try:
                fingerprint = resyncs.fingerprint(key, listed, config_map_version)
            except ApiException as e:  # a full reconcile says what is wrong with it
                log.debug("resync of %s/%s: ConfigMap version unreadable (%s): full reconcile", *key, e.status)
            if fingerprint is not None and resyncs.unchanged(key, listed, fingerprint):
                metrics.RESYNCS_SETTLED.inc()
                return None
        started, result = time.monotonic(), "error"
        try:
            with logs.about(namespace, name):
                lease_name = reconcile(k, namespace, name, options)
            result = "ok"
            if fingerprint is not None:
                resyncs.record(key, fingerprint, started)
            return lease_name
        finally:
            metrics.RECONCILE_DURATION.labels(result).observe(time.monotonic() - started)

    watched = memo["watched"] = Watched()
    controller = LeadingController(work, watched.objects, config.CONFIG.resync_seconds)
    memo["controller"] = controller
    fleet_handlers.make_controller(memo, k, config.CONFIG)

    def lead() -> None:
        # Until now this replica stood by: it watched (kopf's index stays warm) and served health and
        # metrics, and dropped every trigger. The first resync reconciles everything, so what happened
        # meanwhile is caught up at once.
        metrics.LEADER.set(1)
        for each in (controller, memo.get(fleet_handlers.MEMO_KEY)):
            if isinstance(each, LeadingController):
                each.acting = True
                each.start()

    election = config.CONFIG.election
    if election is None:
        lead()
        return
    loop = asyncio.get_running_loop()
    identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"  # pod name first: kubectl shows who leads

    def lost() -> None:
        # A reconcile running in a thread cannot be stopped half-way and must not write after a new leader
        # started: end the process, as controller-runtime does; the kubelet restarts it as a standby.
        metrics.LEADER.set(0)
        logging.shutdown()
        os._exit(1)

    # Its own client, each call bounded (lease.REQUEST_TIMEOUT_SECONDS, no retries inside a call): a renewal
    # that hung would keep this replica acting past its renew deadline while a standby takes the Lease.
    elector = leader.Elector(lease_mod._Api(), election.namespace, election.lease, me=identity,
                             timing=election.timing, on_started=lambda: _call_soon(loop, lead), on_lost=lost)
    memo["elector"] = elector
    memo["election_task"] = loop.create_task(elector.run(), name="leader election")
    metrics.LEADER.set(0)
    log.info("leader election: %s stands by for Lease %s/%s", identity, election.namespace, election.lease)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for key in ("election_task", "sampler_task"):
        task: asyncio.Task[None] | None = memo.get(key)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    for key in ("controller", fleet_handlers.MEMO_KEY):
        controller: Controller | None = memo.get(key)
        if controller is not None:
            await controller.stop()
    elector: leader.Elector | None = memo.get("elector")
    if elector is not None:
        try:  # hand over now: the standby takes over within a retry period, not a lease duration
            await asyncio.to_thread(elector.release)
        except Exception as e:  # noqa: BLE001  the Lease expires by itself
            log.warning("leader election: releasing the Lease failed: %s", e)


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def schemamigration_event(type: str, body: kopf.Body, namespace: str | None, name: str, memo: Any,
                                **_: Any) -> None:
    watched: Watched | None = memo.get("watched")
    if watched is not None:
        watched.saw(type, body)
    controller: Controller | None = memo.get("controller")
    if namespace is None or controller is None:
        return
    if type == "DELETED":
        controller.forget(namespace, name)
        resyncs: resync.Resyncs | None = memo.get("resyncs")
        if resyncs is not None:
            resyncs.forget((namespace, name))
        metrics.STATE.forget(namespace, name)
        return
    controller.trigger(namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels={jobs_mod.LABEL_MANAGED_BY: jobs_mod.MANAGED_BY})
async def job_event(labels: Mapping[str, str], namespace: str | None, memo: Any, **_: Any) -> None:
    owner = labels.get(jobs_mod.LABEL_MIGRATION)
    controller: Controller | None = memo.get("controller")
    if owner and namespace and controller is not None:
        controller.trigger(namespace, owner)


@kopf.on.event("coordination.k8s.io", "v1", "leases", labels={jobs_mod.LABEL_MANAGED_BY: jobs_mod.MANAGED_BY})
async def lease_event(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if namespace and controller is not None:
        controller.trigger_lease(namespace, name)
