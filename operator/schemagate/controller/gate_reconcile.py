"""The rollout gate's I/O, run at the end of each SchemaMigration reconcile: read the gated Deployments
and their pods, patch each pod's schema-ready condition as `gate.decide` says, and report
status.rolloutGate plus the Events to post on the Deployments.

It runs inside the reconcile (same worker thread, serialised per SchemaMigration) so it sees the
database version that reconcile just read: when a Job commits, the same pass that records it opens the
gate. Pod watch events (gate_handlers) trigger that reconcile, so a new pod is decided within moments.
"""

from __future__ import annotations

import json
import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from schemagate.api import conditions as c
from schemagate.api import v1alpha1 as api
from schemagate.controller import gate
from schemagate.controller import observe
from schemagate.controller.plan import DbState

if TYPE_CHECKING:  # reconcile imports this module
    from schemagate.controller.reconcile import Clients

log = logging.getLogger(__name__)

# The reconcile already tried the database and failed for these: do not wait for the same timeout twice.
_DATABASE_REASONS = frozenset({c.SECRET_NOT_FOUND, c.INVALID_DATABASE_URL, c.DATABASE_NOT_ALLOWED,
                               c.CONNECTION_FAILED, c.AUTHENTICATION_FAILED})

STRATEGIC_MERGE = "application/strategic-merge-patch+json"


@dataclass
class Result:
    """status.rolloutGate (None clears it) and the Events to post once status is written."""

    status: dict[str, Any] | None
    events: list[tuple[dict[str, Any], gate.Event]] = field(default_factory=list)


def _json(resp: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(resp.data)
    return doc


def _schema(k: Clients, namespace: str, name: str, spec: api.SchemaMigrationSpec, status: dict[str, Any],
            db_state: DbState | None, allowed_hosts: tuple[str, ...]) -> gate.Schema:
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


def _patch_pod(core: client.CoreV1Api, namespace: str, pod: dict[str, Any], decision: gate.Decision) -> bool:
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


def _also_gating(k: Clients, namespace: str, name: str) -> dict[str, list[str]]:
    """Deployment → the other SchemaMigrations of the namespace naming it in spec.rolloutGate."""
    found: Any = k.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL)
    out: dict[str, list[str]] = {}
    for item in found.get("items") or []:
        other = (item.get("metadata") or {}).get("name")
        deployments = ((item.get("spec") or {}).get("rolloutGate") or {}).get("deployments") or []
        if other and other != name and isinstance(deployments, list):
            for d in deployments:
                out.setdefault(str(d), []).append(other)
    return out


def _template(apps: client.AppsV1Api, namespace: str, pod: dict[str, Any], dep: dict[str, Any],
              cache: dict[str, dict[str, Any] | None]) -> dict[str, str] | None:
    """The pod template annotations of the pod's ReplicaSet, when Deployment → ReplicaSet → pod hold by
    UID (gate.template_of); each ReplicaSet is read once per pass."""
    ref = gate.controller_ref(pod.get("metadata"), "ReplicaSet")
    if ref is None:
        return None
    if ref[0] not in cache:
        try:
            cache[ref[0]] = _json(apps.read_namespaced_replica_set(ref[0], namespace, _preload_content=False))
        except ApiException as e:
            if e.status != 404:
                raise  # forbidden or failing: the caller keeps the last entry and decides nothing (fail closed)
            cache[ref[0]] = None
    replicaset = cache[ref[0]]
    return None if replicaset is None else gate.template_of(replicaset, pod.get("metadata") or {}, dep)


def _deployment(k: Clients, namespace: str, name: str, schema: gate.Schema, old: dict[str, Any] | None,
                others: list[str]) -> tuple[dict[str, Any], list[tuple[dict[str, Any], gate.Event]]]:
    apps = client.AppsV1Api(k.core.api_client)
    try:
        dep = _json(apps.read_namespaced_deployment(name, namespace, _preload_content=False))
    except ApiException as e:
        if e.status in (403, 404):
            what = "not found" if e.status == 404 else "not readable by the operator (forbidden)"
            return gate.deployment_status(name, [], f"Deployment {namespace}/{name} {what}"), []
        raise
    spec = dep.get("spec") or {}
    problem = gate.conflict_message(namespace, name, others) if others else None
    if not problem and not gate.is_gated((spec.get("template") or {}).get("spec")):
        problem = (f"the pod template of Deployment {namespace}/{name} has no readinessGates entry "
                   f"{{conditionType: {gate.CONDITION}}}: its new pods are not held")
    try:
        selector = gate.label_selector(spec.get("selector"))
    except ValueError as e:
        return gate.deployment_status(name, [], f"Deployment {namespace}/{name}: {e}"), []
    pods = _json(k.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False))["items"]
    views: list[gate.PodView] = []
    released = 0
    replicasets: dict[str, dict[str, Any] | None] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if not gate.is_gated(pod.get("spec")) or meta.get("deletionTimestamp"):
            continue
        template = _template(apps, namespace, pod, dep, replicasets)
        if template is None:
            continue  # not a pod of this Deployment (another owner matching the selector, a ReplicaSet gone)
        # Two SchemaMigrations (two databases, perhaps) would each open the gate by their own measure.
        decision = None if others else gate.decide(pod, schema, template)
        if gate.needs_patch(pod, decision):
            assert decision is not None
            if not _patch_pod(k.core, namespace, pod, decision):
                decision = None  # report what the pod still says
            elif decision.status == c.TRUE:
                released += 1
        views.append(gate.view(pod, decision, schema.target, template))
    entry = gate.deployment_status(name, views, problem, conflict=bool(others))
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "namespace": namespace,
           "uid": (dep.get("metadata") or {}).get("uid")}
    return entry, [(ref, e) for e in gate.events(old, entry, schema, released)]


def run(k: Clients, obj: dict[str, Any], status: dict[str, Any], db_state: DbState | None,
        allowed_hosts: tuple[str, ...] = ()) -> Result | None:
    """Decide every gated pod; None when the spec cannot be read or the namespace's SchemaMigrations cannot
    be listed (no pod is decided, status.rolloutGate stays as it was)."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        spec = api.SchemaMigrationSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return None
    if spec.rollout_gate is None:
        return Result(None)
    schema = _schema(k, namespace, name, spec, status, db_state, allowed_hosts)
    try:
        others = _also_gating(k, namespace, name)
    except ApiException as e:  # decide nothing this round rather than without knowing (fail closed)
        log.warning("rollout gate of %s/%s: cannot list SchemaMigrations: %s %s", namespace, name, e.status, e.reason)
        return None
    old = {d.get("name"): d for d in ((obj.get("status") or {}).get("rolloutGate") or {}).get("deployments") or []}
    entries: list[dict[str, Any]] = []
    events: list[tuple[dict[str, Any], gate.Event]] = []
    for deployment in spec.rollout_gate.deployments:
        try:
            entry, evs = _deployment(k, namespace, deployment, schema, old.get(deployment),
                                     others.get(deployment, []))
        except Exception:  # noqa: BLE001  the gate must not stop the migration's own status; the next
            # event or resync tries again, and until then the pods keep their condition (fail closed).
            log.exception("rollout gate of %s/%s: Deployment %s failed", namespace, name, deployment)
            entry, evs = old.get(deployment) or gate.deployment_status(deployment, []), []
        entries.append(entry)
        events += evs
    return Result(gate.status(entries), events)


def post_events(k: Clients, result: Result | None) -> None:
    """Events on the Deployments (best effort: status carries the truth)."""
    for ref, event in (result.events if result else []):
        now = c.now_rfc3339()
        body = {
            "metadata": {"generateName": f"{ref['name']}.", "namespace": ref["namespace"]},
            "involvedObject": ref, "type": event.type, "reason": event.reason, "message": event.message[:1024],
            "firstTimestamp": now, "lastTimestamp": now, "count": 1, "source": {"component": "schemagate"},
            "reportingComponent": "schemagate.io/operator", "reportingInstance": socket.gethostname()[:128],
        }
        log.log(logging.WARNING if event.type == "Warning" else logging.INFO, "deployment %s/%s: %s: %s",
                ref["namespace"], ref["name"], event.reason, event.message)
        try:
            k.core.create_namespaced_event(ref["namespace"], body)  # type: ignore[arg-type]  # dicts go as-is
        except ApiException as e:
            log.warning("could not post event %s on deployment %s/%s: %s", event.reason, ref["namespace"],
                        ref["name"], e.reason)
