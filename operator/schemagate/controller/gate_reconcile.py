"""The rollout gate's I/O, run at the end of each SchemaMigration reconcile: read the gated Deployments
and StatefulSets and their pods, patch each pod's schema-ready condition as `gate.decide` says (or
`gate.release` for a workload taken out of the gate), and report status.rolloutGate plus the Events to
post on the workloads.

It runs inside the reconcile (same worker thread, serialised per SchemaMigration) so it sees the
database version that reconcile just read: when a Job commits, the same pass that records it opens the
gate. Pod watch events (gate_handlers) trigger that reconcile, so a new pod is decided within moments.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from schemagate import kube
from schemagate.api import conditions as c
from schemagate.api import reasons
from schemagate.api import v1alpha1 as api
from schemagate.controller import events, gate, observe
from schemagate.controller.decide import ObservedDatabase
from schemagate.controller.events import Event
from schemagate.kube import Clients

log = logging.getLogger(__name__)

# The reconcile already tried the database and failed for these: do not wait for the same timeout twice.
_DATABASE_REASONS = frozenset({reasons.SECRET_NOT_FOUND, reasons.INVALID_DATABASE_URL, reasons.DATABASE_NOT_ALLOWED,
                               reasons.CONNECTION_FAILED, reasons.AUTHENTICATION_FAILED})

STRATEGIC_MERGE = "application/strategic-merge-patch+json"


@dataclass
class Result:
    """status.rolloutGate (None clears it) and the Events to post once status is written."""

    status: dict[str, Any] | None
    events: list[tuple[dict[str, Any], Event]] = field(default_factory=list)


def _json(resp: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(resp.data)
    return doc


def _schema(k: Clients, namespace: str, name: str, *, spec: api.SchemaMigrationSpec, status: dict[str, Any],
            db_state: ObservedDatabase | None, allowed_hosts: tuple[str, ...]) -> gate.Schema:
    conds = status.get("conditions")
    stalled = c.get(conds, c.STALLED) or {}
    ready = c.get(conds, c.READY) or {}
    stalled_message = str(stalled.get("message") or stalled.get("reason")) if stalled.get("status") == c.TRUE else None
    progress = str(ready.get("message") or "") if ready.get("status") != c.TRUE and not stalled_message else None
    current: int | None = db_state.current if db_state is not None else None
    unavailable: str | None = None
    if db_state is None:
        if stalled.get("reason") in _DATABASE_REASONS:
            unavailable = stalled_message
        else:
            # The reconcile stopped before reading the database (an invalid file, a missing ConfigMap):
            # pods needing a version the database has must still become Ready, so read it here.
            try:
                current = observe.database_state(observe.database(k.core, namespace, spec, allowed_hosts)).current
            except observe.Blocked as b:
                unavailable = b.message
            except ApiException as e:
                unavailable = f"cannot read Secret {namespace}/{spec.database.secret_ref.name}: {e.status} {e.reason}"
    target = status.get("targetVersion")
    return gate.Schema(migration=name, current=current, target=target if isinstance(target, int) else None,
                       stalled=stalled_message, progress=progress or None, unavailable=unavailable)


def _patch_pod(core: client.CoreV1Api, namespace: str, pod: dict[str, Any], decision: gate.PodDecision) -> bool:
    name = pod["metadata"]["name"]
    body = gate.condition_patch(decision, gate.condition(pod), c.now_rfc3339())
    try:
        core.patch_namespaced_pod_status(name, namespace, body, _content_type=STRATEGIC_MERGE)
    except ApiException as e:
        if e.status == 404:  # gone meanwhile
            return False
        log.warning("could not set %s on pod %s/%s: %s %s", gate.CONDITION, namespace, name, e.status, e.reason)
        return False
    log.info("pod %s/%s: %s=%s (%s) %s", namespace, name, gate.CONDITION, decision.status, decision.reason,
             decision.message)
    return True


def named(spec: api.RolloutGateSpec | None) -> list[tuple[str, str]]:
    """(kind, name) of every workload spec.rolloutGate names, in the spec's order."""
    if spec is None:
        return []
    return [(gate.DEPLOYMENT, d) for d in spec.deployments] + [(gate.STATEFUL_SET, s) for s in spec.stateful_sets]


def also_gating(k: Clients, namespace: str, name: str) -> dict[tuple[str, str], list[str]]:
    """(kind, workload) → the other SchemaMigrations of the namespace naming it in spec.rolloutGate."""
    found: Any = k.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL)
    return gate.gated_by(found.get("items") or [], besides=name)


def _read(k: Clients, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    """The gated Deployment or StatefulSet; None when there is none of that name."""
    apps = client.AppsV1Api(k.core.api_client)
    read = apps.read_namespaced_deployment if kind == gate.DEPLOYMENT else apps.read_namespaced_stateful_set
    return kube.read_json(read, name, namespace)


def _template(apps: client.AppsV1Api, namespace: str, pod: dict[str, Any], kind: str, workload: dict[str, Any],
              *, cache: dict[str, dict[str, Any] | None]) -> dict[str, str] | None:
    """The annotations of the pod template the pod was made from, when the ownership holds by UID
    (gate.template_of, gate.revision_template_of); each ReplicaSet or ControllerRevision is read once per
    pass."""
    meta = pod.get("metadata") or {}
    read: Callable[..., Any]
    if kind == gate.DEPLOYMENT:
        ref = gate.controller_ref(meta, "ReplicaSet")
        owner = ref[0] if ref else None
        read = apps.read_namespaced_replica_set
    else:
        owner = (meta.get("labels") or {}).get(gate.REVISION_LABEL)
        read = apps.read_namespaced_controller_revision
    if not owner:
        return None
    if owner not in cache:
        # Forbidden or failing raises: the caller keeps the last entry and decides nothing (fail closed).
        cache[owner] = kube.read_json(read, owner, namespace)
    found = cache[owner]
    if found is None:
        return None
    if kind == gate.DEPLOYMENT:
        return gate.template_of(found, meta, workload)
    return gate.revision_template_of(found, meta, workload)


def _ref(kind: str, namespace: str, name: str, workload: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "namespace": namespace,
            "uid": (workload.get("metadata") or {}).get("uid")}


def _pods(k: Clients, namespace: str, kind: str, workload: dict[str, Any]
          ) -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
    """(pod, its template's annotations) for each live gated pod of the workload, by UID. Raises
    ValueError for a selector that cannot be used."""
    apps = client.AppsV1Api(k.core.api_client)
    selector = gate.label_selector((workload.get("spec") or {}).get("selector"))
    pods = _json(k.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False))["items"]
    templates: dict[str, dict[str, Any] | None] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if not gate.is_gated(pod.get("spec")) or meta.get("deletionTimestamp"):
            continue
        template = _template(apps, namespace, pod, kind, workload, cache=templates)
        if template is not None:  # else not a pod of this workload (another owner matching the selector)
            yield pod, template


def _workload(k: Clients, namespace: str, kind: str, name: str, *, schema: gate.Schema, old: dict[str, Any] | None,
              others: list[str]) -> tuple[dict[str, Any], list[tuple[dict[str, Any], Event]]]:
    try:
        workload = _read(k, kind, name, namespace)
    except ApiException as e:
        if e.status != 403:
            raise
        return gate.deployment_status(name, [], f"{kind} {namespace}/{name} not readable by the operator "
                                                f"(forbidden)"), []
    if workload is None:
        return gate.deployment_status(name, [], f"{kind} {namespace}/{name} not found"), []
    spec = workload.get("spec") or {}
    problem = gate.conflict_message(namespace, name, others, kind) if others else None
    if not problem and not gate.is_gated((spec.get("template") or {}).get("spec")):
        problem = (f"the pod template of {kind} {namespace}/{name} has no readinessGates entry "
                   f"{{conditionType: {gate.CONDITION}}}: its new pods are not held")
    views: list[gate.PodView] = []
    released = 0
    try:
        for pod, template in _pods(k, namespace, kind, workload):
            # Two SchemaMigrations (two databases, perhaps) would each open the gate by their own measure.
            decision = None if others else gate.decide(pod, schema, template)
            if gate.needs_patch(pod, decision):
                assert decision is not None
                if not _patch_pod(k.core, namespace, pod, decision):
                    decision = None  # report what the pod still says
                elif decision.status == c.TRUE:
                    released += 1
            views.append(gate.view(pod, decision, schema.target, template))
    except ValueError as e:
        return gate.deployment_status(name, [], f"{kind} {namespace}/{name}: {e}"), []
    entry = gate.deployment_status(name, views, problem, conflict=bool(others))
    ref = _ref(kind, namespace, name, workload)
    return entry, [(ref, e) for e in gate.events(old, entry, schema, released)]


def _release(k: Clients, namespace: str, migration: str, kind: str, name: str, *, why: str
             ) -> list[tuple[dict[str, Any], Event]]:
    """Open the held pods of a workload that left the gate; a Warning Event on it says so."""
    workload = _read(k, kind, name, namespace)
    if workload is None:
        return []  # gone, and its pods with it
    what = f"{kind} {namespace}/{name}"
    released = 0
    try:
        for pod, _ in _pods(k, namespace, kind, workload):
            decision = gate.release(pod, what, migration=migration, why=why)
            if decision is not None and _patch_pod(k.core, namespace, pod, decision):
                released += 1
    except ValueError:
        return []  # a selector that selects nothing gated nothing
    if not released:
        return []
    return [(_ref(kind, namespace, name, workload), gate.released_event(what, migration=migration, why=why,
                                                                                released=released))]


def _release_all(k: Clients, namespace: str, name: str, workloads: list[tuple[str, str]], *,
                 gating: dict[tuple[str, str], list[str]], why: str
                 ) -> tuple[list[tuple[dict[str, Any], Event]], list[tuple[str, str]]]:
    """`_release` each of `workloads` that no other object gates (their pods are its to decide): the Events,
    and the workloads whose release failed (logged; the caller may keep their last status entry)."""
    events: list[tuple[dict[str, Any], Event]] = []
    failed: list[tuple[str, str]] = []
    for kind, workload in workloads:
        if gating.get((kind, workload)):
            continue
        try:
            events += _release(k, namespace, name, kind, workload, why=why)
        except Exception:
            log.exception("rollout gate of %s/%s (%s): releasing %s %s failed", namespace, name, why, kind, workload)
            failed.append((kind, workload))
    return events, failed


REMOVED = "removed from its spec.rolloutGate"
DELETED = "the SchemaMigration was deleted"


def old_entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    rollout_gate = (obj.get("status") or {}).get("rolloutGate") or {}
    return {(kind, str(d.get("name"))): d for kind, field_name in gate.FIELDS.items()
            for d in rollout_gate.get(field_name) or [] if d.get("name")}


def run(k: Clients, obj: dict[str, Any], status: dict[str, Any], db_state: ObservedDatabase | None,
        allowed_hosts: tuple[str, ...] = ()) -> Result | None:
    """The gate of one SchemaMigration (`gate_workloads`); None when its spec cannot be read."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        spec = api.SchemaMigrationSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return None
    return gate_workloads(k, namespace, name, workloads=named(spec.rollout_gate), old=old_entries(obj),
                          others=lambda: also_gating(k, namespace, name),
                          schema=lambda: _schema(k, namespace, name, spec=spec, status=status, db_state=db_state,
                                                 allowed_hosts=allowed_hosts))


def gate_workloads(k: Clients, namespace: str, name: str, *, workloads: list[tuple[str, str]],
                   old: dict[tuple[str, str], dict[str, Any]],
                   others: Callable[[], dict[tuple[str, str], list[str]]],
                   schema: Callable[[], gate.Schema]) -> Result | None:
    """Decide every gated pod of `workloads` (what SchemaMigration or SchemaMigrationSet `name` gates), and
    release the held pods of the workloads in `old` (the status last written) it no longer names. None when
    `others` (who else gates what) cannot be listed: no pod is decided, status.rolloutGate stays as it was."""
    # Known from the last status written: what this object gated and no longer does.
    removed = [key for key in old if key not in workloads]
    if not workloads and not removed:
        return Result(None)
    try:
        gating = others()
    except ApiException as e:  # decide nothing this round rather than without knowing (fail closed)
        log.warning("rollout gate of %s/%s: cannot list who else gates: %s %s", namespace, name, e.status, e.reason)
        return None
    entries: dict[str, list[dict[str, Any]]] = {kind: [] for kind in gate.KINDS}
    events: list[tuple[dict[str, Any], Event]] = []
    decided = schema() if workloads else None
    for kind, workload in workloads:
        assert decided is not None
        try:
            entry, evs = _workload(k, namespace, kind, workload, schema=decided, old=old.get((kind, workload)),
                                   others=gating.get((kind, workload), []))
        except Exception:
            # event or resync tries again, and until then the pods keep their condition (fail closed).
            log.exception("rollout gate of %s/%s: %s %s failed", namespace, name, kind, workload)
            entry, evs = old.get((kind, workload)) or gate.deployment_status(workload, []), []
        entries[kind].append(entry)
        events += evs
    released, failed = _release_all(k, namespace, name, removed, gating=gating, why=REMOVED)
    events += released
    for kind, workload in failed:
        entries[kind].append(old[(kind, workload)])
    if not workloads and not any(entries.values()):
        return Result(None, events)
    return Result(gate.status(entries), events)


def release_deleted(k: Clients, obj: dict[str, Any]) -> Result:
    """The SchemaMigration `obj` is gone: release the held pods of every workload it gated that no other
    SchemaMigration names. Best effort (there is no status left to retry from): failures are logged."""
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    try:
        spec = api.SchemaMigrationSpec.model_validate(obj.get("spec") or {})
        workloads = named(spec.rollout_gate)
    except ValidationError:
        workloads = []
    workloads += [key for key in old_entries(obj) if key not in workloads]
    if not namespace or not name or not workloads:
        return Result(None)
    try:
        others = also_gating(k, namespace, name)
    except ApiException as e:
        log.warning("rollout gate of deleted %s/%s: cannot list SchemaMigrations, nothing released: %s %s",
                    namespace, name, e.status, e.reason)
        return Result(None)
    return Result(None, _release_all(k, namespace, name, workloads, gating=others, why=DELETED)[0])


def post_events(k: Clients, result: Result | None) -> None:
    """Events on the gated workloads (best effort: status carries the truth)."""
    for ref, event in (result.events if result else []):
        events.post(k, ref, [event])
