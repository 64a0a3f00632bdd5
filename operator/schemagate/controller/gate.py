"""The rollout gate's decisions (pure): which pods are gated, what their schema-ready condition says,
what the SchemaMigration's status and the Deployment's Events report. No I/O here.

A gated pod declares `readinessGates: [{conditionType: schemagate.io/schema-ready}]`; the kubelet keeps
it un-Ready while that condition is missing or not True. So the gate fails closed by itself: a pod nobody
decided on (operator down, new pod) is not Ready. The operator only ever opens it:

- True once the database is at (or past) the version the pod needs, and then never back to False — a
  newer pending migration must not take the serving version out of service (a latch, per pod).
- False with a reason and message otherwise, so `kubectl describe pod` says what it waits for.

The gated workloads are Deployments and StatefulSets. The version a pod needs is read from the pod
template it was made from, never from the live pod: whoever may only `patch pods` (not `pods/status`)
could otherwise set the pod's annotation to 0 and open a gate that then never closes. For a Deployment
that template is its ReplicaSet's, which counts only when it is the pod's controller by UID and is itself
controlled by the gated Deployment by UID; for a StatefulSet it is the ControllerRevision the pod's
`controller-revision-hash` label names, controlled (as the pod is) by the StatefulSet by UID. A pod whose
annotation differs from its template is held.

A workload taken out of the gate (removed from spec.rolloutGate, or its SchemaMigration deleted) has its
held pods released, loudly: nobody would ever decide them again, and a rollout nobody owns is worse than
one let through by an explicit edit (see `release`). Pods created later are nobody's: the Event says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemagate.api import reasons
from schemagate.controller.events import Event

CONDITION = "schemagate.io/schema-ready"
REQUIRED_VERSION_ANNOTATION = "schemagate.io/required-schema-version"

DEPLOYMENT = "Deployment"
STATEFUL_SET = "StatefulSet"
KINDS = (DEPLOYMENT, STATEFUL_SET)
REVISION_LABEL = "controller-revision-hash"  # on a StatefulSet's pods: the name of their ControllerRevision

MESSAGE_LIMIT = 512


@dataclass(frozen=True)
class Schema:
    """What the SchemaMigration knows this round, as far as the gate cares."""

    migration: str  # the SchemaMigration's name, for messages
    current: int | None  # the database's version read this round; None: could not be read
    target: int | None  # the resolved target; None: not known (yet)
    stalled: str | None = None  # the Stalled condition's message when it is True
    progress: str | None = None  # what is under way (the Ready condition's message) when not at the target
    unavailable: str | None = None  # why the database could not be read


@dataclass(frozen=True)
class PodDecision:
    status: str  # "True" | "False"
    reason: str
    message: str
    required: int | None


@dataclass(frozen=True)
class PodView:
    """One gated pod after the decision: what status and Events count."""

    name: str
    status: str  # the condition's status once the decision is applied ("" when still absent)
    reason: str
    required: int | None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def is_gated(pod_spec: Mapping[str, Any] | None) -> bool:
    return any((g or {}).get("conditionType") == CONDITION for g in (pod_spec or {}).get("readinessGates") or [])


def condition(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == CONDITION:
            return dict(c)
    return None


def deployment_of(metadata: Mapping[str, Any]) -> str | None:
    """The Deployment a pod's watch event concerns, by the Deployment controller's naming: its ReplicaSet
    is `<deployment>-<pod-template-hash>` and is the pod's controller. Only a trigger: what the gate
    decides checks ownership by UID (`controller_ref`)."""
    template_hash = (metadata.get("labels") or {}).get("pod-template-hash")
    if not template_hash:
        return None
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "ReplicaSet":
            name = str(ref.get("name") or "")
            suffix = f"-{template_hash}"
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
    return None


def workload_of(metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the gated workload a pod's watch event concerns. Only a trigger, like
    `deployment_of`: what the gate decides checks ownership by UID."""
    deployment = deployment_of(metadata)
    if deployment is not None:
        return DEPLOYMENT, deployment
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == STATEFUL_SET and ref.get("name"):
            return STATEFUL_SET, str(ref["name"])
    return None


def controller_ref(metadata: Mapping[str, Any] | None, kind: str) -> tuple[str, str] | None:
    """(name, uid) of the object's controller when it is a `kind`; None otherwise."""
    for ref in (metadata or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind and ref.get("name") and ref.get("uid"):
            return str(ref["name"]), str(ref["uid"])
    return None


def template_of(replicaset: Mapping[str, Any], pod_meta: Mapping[str, Any], deployment: Mapping[str, Any]
                ) -> dict[str, str] | None:
    """The pod template annotations of `replicaset` when it is the pod's controller and the Deployment is
    its controller, both by UID (a name can be re-used; a UID cannot); None when the pod is not ours."""
    rs_meta = replicaset.get("metadata") or {}
    dep_meta = deployment.get("metadata") or {}
    if controller_ref(pod_meta, "ReplicaSet") != (rs_meta.get("name"), rs_meta.get("uid")):
        return None
    if not dep_meta.get("uid") or controller_ref(rs_meta, "Deployment") != (dep_meta.get("name"), dep_meta["uid"]):
        return None
    template = ((replicaset.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return dict(template.get("annotations") or {})


def revision_template_of(revision: Mapping[str, Any], pod_meta: Mapping[str, Any],
                         statefulset: Mapping[str, Any]) -> dict[str, str] | None:
    """The pod template annotations stored in a StatefulSet's ControllerRevision when it is the revision
    the pod's label names and both the pod and the revision are controlled by the StatefulSet, by UID;
    None when the pod is not ours. (The StatefulSet controller stores its template as a patch:
    data.spec.template, with `$patch: replace`.)"""
    rev_meta = revision.get("metadata") or {}
    sts_meta = statefulset.get("metadata") or {}
    owner = (sts_meta.get("name"), sts_meta.get("uid"))
    if not sts_meta.get("uid") or controller_ref(pod_meta, STATEFUL_SET) != owner:
        return None
    if controller_ref(rev_meta, STATEFUL_SET) != owner:
        return None
    if not rev_meta.get("name") or (pod_meta.get("labels") or {}).get(REVISION_LABEL) != rev_meta["name"]:
        return None
    template = (((revision.get("data") or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}
    return dict(template.get("annotations") or {})


def label_selector(selector: Mapping[str, Any] | None) -> str:
    """A metav1.LabelSelector as the `labelSelector` query string. Raises ValueError for one that
    selects nothing or everything (a Deployment's selector is never empty)."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), list(e.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise ValueError(f"unknown selector operator {op!r}")
    if not parts:
        raise ValueError("the selector is empty")
    return ",".join(parts)


def required_version(pod_name: str, annotations: Mapping[str, str] | None, target: int | None
                     ) -> tuple[int | None, str | None]:
    """(version the pod needs, error). The annotation wins; without it the SchemaMigration's target."""
    raw = (annotations or {}).get(REQUIRED_VERSION_ANNOTATION)
    if raw is None:
        return target, None
    text = str(raw).strip()
    if not text.isdigit():
        return None, (f"pod {pod_name}: annotation {REQUIRED_VERSION_ANNOTATION}={raw!r} is not a version "
                      f"number (e.g. \"2\")")
    return int(text), None


def decide(pod: Mapping[str, Any], schema: Schema, template: Mapping[str, str]) -> PodDecision | None:
    """The pod's schema-ready condition, or None to leave it as it is (it is True: the latch).
    `template`: the annotations of the pod template of its ReplicaSet (`template_of`)."""
    existing = condition(pod)
    if existing and existing.get("status") == "True":
        return None
    meta = pod.get("metadata") or {}
    name = str(meta.get("name") or "?")
    required, error = required_version(name, template, schema.target)
    if error:
        return PodDecision("False", reasons.INVALID_REQUIRED_VERSION, _short(error), None)
    live = (meta.get("annotations") or {}).get(REQUIRED_VERSION_ANNOTATION)
    if live != template.get(REQUIRED_VERSION_ANNOTATION):
        return PodDecision("False", reasons.ANNOTATION_MISMATCH, _short(
            f"pod {name}: annotation {REQUIRED_VERSION_ANNOTATION}={live!r} differs from its pod template "
            f"({template.get(REQUIRED_VERSION_ANNOTATION)!r}): it was changed on the live pod, so the pod is "
            f"held; delete it and its controller creates one from the template"), required)
    where = f"SchemaMigration {schema.migration}"
    if schema.current is None:
        why = schema.unavailable or "the database could not be read"
        return PodDecision("False", reasons.DATABASE_UNAVAILABLE, _short(f"{where}: {why}"), required)
    if required is None:
        return PodDecision("False", reasons.WAITING_FOR_MIGRATION,
                           _short(f"{where} does not know its target version yet (database at {schema.current})"),
                           None)
    if schema.current >= required:
        return PodDecision("True", reasons.SCHEMA_READY,
                           f"database at version {schema.current}, pod needs {required} ({where})", required)
    needs = f"pod needs schema version {required}, database is at {schema.current}"
    if schema.target is not None and required > schema.target:
        return PodDecision("False", reasons.VERSION_NOT_PLANNED,
                           _short(f"{needs}, but {where} targets {schema.target}: add the migration or raise "
                                  f"targetVersion"), required)
    if schema.stalled:
        return PodDecision("False", reasons.MIGRATION_STALLED, _short(f"{needs}; {where} is stalled: {schema.stalled}"),
                           required)
    progress = f": {schema.progress}" if schema.progress else ""
    return PodDecision("False", reasons.WAITING_FOR_MIGRATION, _short(f"{needs} ({where}{progress})"), required)


def release(pod: Mapping[str, Any], workload: str, *, migration: str, why: str) -> PodDecision | None:
    """The condition for a held pod whose workload left the gate (`why`: how), or None when it is open.
    True, with its own reason, so that `kubectl get pod` and the Event tell that no schema was checked."""
    existing = condition(pod)
    if existing and existing.get("status") == "True":
        return None
    return PodDecision("True", reasons.GATE_REMOVED, _short(
        f"{workload} is no longer gated by SchemaMigration {migration} ({why}): its readiness gate was opened "
        f"without checking the schema"), None)


def released_event(workload: str, *, migration: str, why: str, released: int) -> Event:
    return Event("Warning", reasons.ROLLOUT_GATE_REMOVED, _short(
        f"{workload} is no longer gated by SchemaMigration {migration} ({why}): the readiness gate of "
        f"{released} held pod(s) was opened without checking the schema. Pods created from now on are decided "
        f"by nobody while the pod template has readinessGates {CONDITION}: remove it from the template, or "
        f"name the workload in a SchemaMigration again"))


def needs_patch(pod: Mapping[str, Any], decision: PodDecision | None) -> bool:
    if decision is None:
        return False
    existing = condition(pod)
    return not existing or (existing.get("status"), existing.get("reason"), existing.get("message")) != (
        decision.status, decision.reason, decision.message)


def condition_patch(decision: PodDecision, existing: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """A strategic-merge patch of pods/status: conditions merge by type, the kubelet's survive."""
    since = existing.get("lastTransitionTime") if existing and existing.get("status") == decision.status else None
    return {"status": {"conditions": [{
        "type": CONDITION, "status": decision.status, "reason": decision.reason, "message": decision.message,
        "lastProbeTime": None, "lastTransitionTime": since or now}]}}


def view(pod: Mapping[str, Any], decision: PodDecision | None, target: int | None, template: Mapping[str, str]
         ) -> PodView:
    meta = pod.get("metadata") or {}
    name = str(meta.get("name") or "?")
    if decision is not None:
        return PodView(name, decision.status, decision.reason, decision.required)
    existing = condition(pod) or {}
    required, _ = required_version(name, template, target)
    return PodView(name, str(existing.get("status") or ""), str(existing.get("reason") or ""), required)


# Severity when pods of one Deployment wait for different reasons: the one to show first.
_SEVERITY = [reasons.INVALID_REQUIRED_VERSION, reasons.ANNOTATION_MISMATCH, reasons.MIGRATION_STALLED,
             reasons.VERSION_NOT_PLANNED, reasons.DATABASE_UNAVAILABLE, reasons.WAITING_FOR_MIGRATION]


def deployment_status(name: str, pods: Iterable[PodView], problem: str | None = None,
                      conflict: bool = False) -> dict[str, Any]:
    """One status.rolloutGate.deployments entry (camelCase, as stored)."""
    pods = list(pods)
    waiting = [p for p in pods if p.status != "True"]
    required = [p.required for p in waiting if p.required is not None]
    why = {p.reason for p in waiting}
    reason = next((r for r in _SEVERITY if r in why), next(iter(sorted(why)), None)) if waiting else None
    if conflict:
        reason = reasons.GATE_CONFLICT
    return {"name": name, "pods": len(pods), "waiting": len(waiting),
            "requiredVersion": max(required) if required else None, "reason": reason or None,
            "message": problem}


# Where each kind's entries sit, in spec.rolloutGate and status.rolloutGate alike.
FIELDS = {DEPLOYMENT: "deployments", STATEFUL_SET: "statefulSets"}


def gated_by(items: Iterable[Mapping[str, Any]], *, besides: str, label: str = "{}",
             into: dict[tuple[str, str], list[str]] | None = None) -> dict[tuple[str, str], list[str]]:
    """(kind, workload) → the names (formatted by `label`) of the objects among `items` whose
    spec.rolloutGate names it, leaving out `besides` and objects being deleted; added to `into`."""
    out = {} if into is None else into
    for item in items:
        meta = item.get("metadata") or {}
        other = meta.get("name")
        if not other or other == besides or meta.get("deletionTimestamp"):
            continue
        rollout_gate = (item.get("spec") or {}).get("rolloutGate") or {}
        for kind, field_name in FIELDS.items():
            workloads = rollout_gate.get(field_name) or []
            for w in workloads if isinstance(workloads, list) else []:
                out.setdefault((kind, str(w)), []).append(label.format(other))
    return out


def status(entries: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """status.rolloutGate from the entries per kind; an empty list of a kind is left out."""
    out: dict[str, Any] = {"waiting": sum(int(e.get("waiting") or 0) for es in entries.values() for e in es)}
    for kind, field_name in FIELDS.items():
        if entries.get(kind) or kind == DEPLOYMENT:
            out[field_name] = list(entries.get(kind) or [])
    return out


def conflict_message(namespace: str, workload: str, others: Iterable[str], kind: str = DEPLOYMENT) -> str:
    names = ", ".join(sorted(others))
    return (f"{kind} {namespace}/{workload} is also named in spec.rolloutGate of SchemaMigration {names}: "
            f"none of them decides its pods until exactly one names it")


def events(old: Mapping[str, Any] | None, new: Mapping[str, Any], schema: Schema, released: int) -> list[Event]:
    """Events for one gated workload: a Warning when its gate is misconfigured, held when pods start waiting (or
    wait for a new reason), released when the gate opened for the last waiting pods. `released` = pods the
    gate opened this round."""
    out: list[Event] = []
    problem = new.get("message")
    if problem and problem != (old or {}).get("message"):
        out.append(Event("Warning", reasons.ROLLOUT_GATE_MISCONFIGURED, _short(str(problem))))
    if new.get("reason") == reasons.GATE_CONFLICT:
        return out
    return out + _hold_events(old, new, schema, released)


def _hold_events(old: Mapping[str, Any] | None, new: Mapping[str, Any], schema: Schema, released: int
                 ) -> list[Event]:
    before = int((old or {}).get("waiting") or 0)
    after = int(new.get("waiting") or 0)
    if after:
        if before and (old or {}).get("reason") == new.get("reason"):
            return []
        version = new.get("requiredVersion")
        needs = f"schema version {version}" if version is not None else "a schema version"
        at = "unknown" if schema.current is None else str(schema.current)
        reason = new.get("reason")
        kind = "Warning" if reason in (reasons.MIGRATION_STALLED, reasons.INVALID_REQUIRED_VERSION,
                                       reasons.ANNOTATION_MISMATCH, reasons.VERSION_NOT_PLANNED,
                                       reasons.DATABASE_UNAVAILABLE) else "Normal"
        why = {reasons.MIGRATION_STALLED: f"SchemaMigration {schema.migration} is stalled: {schema.stalled}",
               reasons.VERSION_NOT_PLANNED: f"SchemaMigration {schema.migration} targets {schema.target}",
               reasons.DATABASE_UNAVAILABLE: f"{schema.unavailable or 'the database could not be read'}",
               reasons.INVALID_REQUIRED_VERSION: f"annotation {REQUIRED_VERSION_ANNOTATION} is not a version number",
               reasons.ANNOTATION_MISMATCH: f"annotation {REQUIRED_VERSION_ANNOTATION} of a pod differs from its "
                                    f"template",
               }.get(str(reason), f"SchemaMigration {schema.migration}"
                                  f"{': ' + schema.progress if schema.progress else ' is migrating'}")
        return [Event(kind, reasons.ROLLOUT_HELD, _short(f"rollout held: {after} pod(s) wait for {needs}, database at "
                                                         f"{at}; {why}"))]
    if before and released:
        return [Event("Normal", reasons.ROLLOUT_RELEASED,
                      _short(f"rollout released: database at version {schema.current}; the readiness gate of "
                             f"{released} pod(s) opened (SchemaMigration {schema.migration})"))]
    return []
