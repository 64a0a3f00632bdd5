"""A SchemaMigrationSet's decisions (pure): from its spec, its children's state and the selected Secrets to
the SchemaMigrations to create, update or let go, and the set's status. No I/O here (fleet_reconcile does it).

The set is a ReplicaSet of SchemaMigrations. Each database (a Secret) gets one child named
`<set>-<secret>` (shortened with a hash when too long), labelled with the set and owned by it. The set's
`revision` hashes what every child's spec is made of (source, template, key, table); a child carrying that
revision in its annotation is *updated*. Rolling out is updating children, in this order and no faster:

1. the canaries (the first `canary.count` by name, and the selected Secrets matching `canary.selector`);
2. once every canary is updated and Ready (and, with `strategy.approval: Manual`, the set's approve
   annotation names `status.approval.hash`), the rest by name;
3. at any time at most `maxParallel` updated children not yet Ready or Failed (a sliding window);
4. nothing new starts once `maxFailures` updated children failed, or any canary failed.

A child not yet released keeps its previous spec: it stays at its version. A database that leaves the
selection is orphaned (its SchemaMigration loses the set's owner reference and label, see docs/fleet.md).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemagate.api import conditions as c
from schemagate.api import migrationset as set_api
from schemagate.api import reasons
from schemagate.api import v1alpha1 as api
from schemagate.controller import mergepatch

NAME_MAX = 63  # a child's name is the value of its Jobs' schemagate.io/migration label
HASH_LENGTH = 12
CANARIES_LISTED = 50

NOT_STARTED = "NotStarted"  # no SchemaMigration yet
OUTDATED = "Outdated"  # a SchemaMigration with an earlier revision, waiting for its turn


@dataclass(frozen=True)
class Secret:
    """A selected Secret: only its name and labels are ever read into the set's decisions."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedSet:
    name: str
    namespace: str
    uid: str
    generation: int
    spec: set_api.SchemaMigrationSetSpec
    annotations: Mapping[str, str]
    children: Sequence[Mapping[str, Any]]  # SchemaMigrations of the namespace labelled with this set or named as its
    selected: Sequence[Secret]  # Secrets the selector found (empty without a selector)
    old_status: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    create: list[dict[str, Any]]  # whole SchemaMigration bodies
    update: list[tuple[str, dict[str, Any]]]  # (child name, JSON merge patch)
    orphan: list[tuple[str, dict[str, Any]]]  # (child name, JSON merge patch letting it go)
    status: dict[str, Any]


def _digest(doc: Any, length: int = HASH_LENGTH) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:length]


def short_name(*parts: str) -> str:
    """`a-b`, or when longer than a label value may be, a prefix and a hash of the whole (still unique)."""
    full = "-".join(parts)
    if len(full) <= NAME_MAX:
        return full
    return full[: NAME_MAX - 9].rstrip("-.") + "-" + _digest(full, 8)


def child_name(set_name: str, database: str) -> str:
    return short_name(set_name, database)


def set_label(set_name: str) -> str:
    return short_name(set_name)


def revision(spec: set_api.SchemaMigrationSetSpec) -> str:
    """What every child's spec is made of; the strategy is not part of it (changing it re-rolls nothing)."""
    return _digest({"source": spec.source.model_dump(mode="json", by_alias=True, exclude_none=True),
                    "template": spec.template.model_dump(mode="json", by_alias=True, exclude_none=True),
                    "key": spec.databases.key, "table": spec.databases.table})


def child_spec(spec: set_api.SchemaMigrationSetSpec, database: str) -> dict[str, Any]:
    """The SchemaMigration spec for one database (validated against SchemaMigrationSpec by the tests)."""
    return {"database": {"secretRef": {"name": database, "key": spec.databases.key}, "table": spec.databases.table},
            "source": spec.source.model_dump(mode="json", by_alias=True, exclude_none=True),
            **spec.template.model_dump(mode="json", by_alias=True, exclude_none=True)}


def owner_reference(i: ObservedSet) -> dict[str, Any]:
    return {"apiVersion": set_api.API_VERSION, "kind": set_api.KIND, "name": i.name, "uid": i.uid,
            "controller": True, "blockOwnerDeletion": True}


def matches(selector: set_api.LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; no selector matches nothing."""
    if selector is None:
        return False
    for k, v in (selector.match_labels or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.match_expressions or []:
        present, value = e.key in labels, labels.get(e.key)
        ok = {"In": present and value in (e.values or []), "NotIn": not present or value not in (e.values or []),
              "Exists": present, "DoesNotExist": not present}[e.operator]
        if not ok:
            return False
    return True


def database_names(spec: set_api.SchemaMigrationSetSpec, selected: Sequence[Secret]) -> list[str]:
    return sorted({s.name for s in selected} | set(spec.databases.secrets or []))


def databases(i: ObservedSet) -> list[str]:
    return database_names(i.spec, i.selected)


def canaries(i: ObservedSet, names: Sequence[str]) -> list[str]:
    labels = {s.name: s.labels for s in i.selected}
    first = set(names[: i.spec.strategy.canary.count])
    return [d for d in names if d in first or matches(i.spec.strategy.canary.selector, labels.get(d, {}))]


def _controller_uid(meta: Mapping[str, Any]) -> str | None:
    return next((r.get("uid") for r in meta.get("ownerReferences") or [] if r.get("controller")), None)


@dataclass(frozen=True)
class _Db:
    name: str
    child: Mapping[str, Any] | None
    updated: bool
    state: str  # the child's phase as observed for its generation, NotStarted, Outdated, or NameConflict

    @property
    def status(self) -> Mapping[str, Any]:
        return (self.child or {}).get("status") or {}


def _phase(child: Mapping[str, Any]) -> str:
    """The child's phase, once its status describes its current generation (else Pending: not looked at yet)."""
    status = child.get("status") or {}
    generation = (child.get("metadata") or {}).get("generation")
    if status.get("observedGeneration") != generation or not status.get("phase"):
        return "Pending"
    if status["phase"] == "Ready" and (c.get(status.get("conditions"), c.READY) or {}).get("status") != c.TRUE:
        return "Pending"
    return str(status["phase"])


def approval_hash(i: ObservedSet, rev: str, canary: Sequence[_Db]) -> str:
    """What an approval releases: this generation's template (revision) after these canaries reached
    these versions. Anything else changing makes a given approval Stale."""
    return _digest({"generation": i.generation, "revision": rev,
                    "canaries": [[d.name, d.status.get("currentVersion")] for d in canary]})


def _failure(d: _Db) -> dict[str, Any]:
    if d.state == reasons.NAME_CONFLICT:
        return {"database": d.name, "migration": (d.child or {}).get("metadata", {}).get("name"),
                "reason": reasons.NAME_CONFLICT,
                "message": "a SchemaMigration of this name exists and is not owned by this set: rename or delete it"}
    ready = c.get(d.status.get("conditions"), c.STALLED) or c.get(d.status.get("conditions"), c.READY) or {}
    return {"database": d.name, "migration": (d.child or {})["metadata"]["name"], "reason": ready.get("reason"),
            "message": (str(ready.get("message") or "")[:300]) or None}


def _list(names: Sequence[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def decide(i: ObservedSet) -> Outcome:
    rev = revision(i.spec)
    label = set_label(i.name)
    names = databases(i)
    wanted = set(names)
    by_name = {str(ch["metadata"]["name"]): ch for ch in i.children}
    create: list[dict[str, Any]] = []
    update: list[tuple[str, dict[str, Any]]] = []
    orphan: list[tuple[str, dict[str, Any]]] = []

    dbs: list[_Db] = []
    adopt: set[str] = set()
    for d in names:
        ch = by_name.get(child_name(i.name, d))
        if ch is None:
            dbs.append(_Db(d, None, False, NOT_STARTED))
            continue
        meta = ch.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        owner = _controller_uid(meta)
        if owner != i.uid:
            # One this set let go earlier (its database left the selection and came back): take it back.
            if owner is None and annotations.get(set_api.DATABASE_ANNOTATION) == d:
                adopt.add(d)
            else:
                dbs.append(_Db(d, ch, False, reasons.NAME_CONFLICT))
                continue
        updated = annotations.get(set_api.REVISION_ANNOTATION) == rev
        dbs.append(_Db(d, ch, updated, _phase(ch) if updated else OUTDATED))

    # Children of databases no longer selected: let go, never deleted (docs/fleet.md says why).
    for ch in i.children:
        meta = ch.get("metadata") or {}
        db = (meta.get("annotations") or {}).get(set_api.DATABASE_ANNOTATION)
        if _controller_uid(meta) == i.uid and db not in wanted:
            refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != i.uid]
            orphan.append((str(meta["name"]), {"metadata": {"ownerReferences": refs or None,
                                                            "labels": {set_api.SET_LABEL: None}}}))

    canary_names = canaries(i, names)
    canary = [d for d in dbs if d.name in set(canary_names)]
    failed = [d for d in dbs if d.state in ("Failed", reasons.NAME_CONFLICT)]
    in_flight = [d for d in dbs if d.updated and d.state not in ("Ready", "Failed")]
    waiting = [d for d in dbs if not d.updated and d.state != reasons.NAME_CONFLICT]
    strategy = i.spec.strategy
    canary_failed = [d for d in canary if d in failed]
    canary_done = all(d.updated and d.state == "Ready" for d in canary)
    halted = len(failed) >= strategy.max_failures or bool(canary_failed)

    approval: dict[str, Any] | None = None
    held_for_approval = False
    candidates: list[_Db] = []
    if not halted:
        if not canary_done:
            candidates = [d for d in waiting if d in canary]
        else:
            candidates = [d for d in waiting if d not in canary]
            if strategy.approval == "Manual" and (candidates or i.old_status.get("approval")):
                hash_ = approval_hash(i, rev, canary)
                given = (i.annotations.get(set_api.APPROVE_ANNOTATION) or "").strip()
                state = "Approved" if given == hash_ else ("Stale" if given else "Pending")
                approval = {"hash": hash_, "state": state}
                if state != "Approved" and candidates:
                    held_for_approval = True
                    candidates = []
    release = candidates[: max(0, strategy.max_parallel - len(in_flight))]

    for db in release:
        name = child_name(i.name, db.name)
        spec = child_spec(i.spec, db.name)
        metadata = {"labels": {set_api.SET_LABEL: label},
                    "annotations": {set_api.DATABASE_ANNOTATION: db.name, set_api.REVISION_ANNOTATION: rev},
                    "ownerReferences": [owner_reference(i)]}
        if db.child is None:
            create.append({"apiVersion": api.API_VERSION, "kind": api.KIND,
                           "metadata": {"name": name, "namespace": i.namespace, **metadata}, "spec": spec})
        else:
            patch = mergepatch.replacing(db.child.get("spec") or {}, spec)  # a field the set dropped goes as null
            update.append((name, {"metadata": metadata, "spec": patch}))
    for d in adopt - {r.name for r in release}:
        update.append((child_name(i.name, d), {"metadata": {"labels": {set_api.SET_LABEL: label},
                                                            "ownerReferences": [owner_reference(i)]}}))

    started = {d.name for d in release}
    states = [("Pending" if d.name in started else d.state) for d in dbs]
    status = _status(i, rev, dbs, states, canary_names, failed=failed, in_flight=in_flight, waiting=waiting,
                     started=started, halted=halted, canary_failed=canary_failed, held_for_approval=held_for_approval,
                     canary_done=canary_done, approval=approval)
    return Outcome(create, update, orphan, status)


def _target(i: ObservedSet, dbs: Sequence[_Db]) -> int | None:
    text = str(i.spec.template.target_version).strip()
    if text.isdigit():
        return int(text)
    targets = [d.status.get("targetVersion") for d in dbs if d.updated]
    numbers = [t for t in targets if isinstance(t, int)]
    return max(numbers) if numbers else None


def _status(i: ObservedSet, rev: str, dbs: Sequence[_Db], states: Sequence[str], canary_names: Sequence[str],
            *, failed: Sequence[_Db], in_flight: Sequence[_Db], waiting: Sequence[_Db], started: set[str],
            halted: bool, canary_failed: Sequence[_Db], held_for_approval: bool, canary_done: bool,
            approval: dict[str, Any] | None) -> dict[str, Any]:
    versions = [d.status.get("currentVersion") for d in dbs if d.child is not None]
    known = [v for v in versions if isinstance(v, int)]
    ready = [d for d in dbs if d.updated and d.state == "Ready"]
    target = _target(i, dbs)
    total = len(dbs)
    failing = [_failure(d) for d in failed]
    not_started = [d.name for d in waiting if d.name not in started]
    at = f"version {target}" if target is not None else "the newest version"
    where = f"{len(ready)}/{total} databases at {at}"
    fail_text = "; ".join(f"{f['database']}: {f['reason']}: {f['message']}" for f in failing[:3])
    if len(failing) > 3:
        fail_text += f"; and {len(failing) - 3} more (status.failing)"

    if total == 0:
        phase = "Pending"
        selector = "the selector matches no Secret" if i.spec.databases.selector else "no Secret is selected"
        desired = c.stalled(reasons.NO_DATABASES, f"{selector} and spec.databases.secrets is empty: the set has no "
                                          f"databases")
    elif canary_failed:
        phase = "Halted"
        desired = c.stalled(reasons.CANARY_FAILED, f"canary failed, the rest stay where they are "
                                                   f"({len(not_started)} not started): {fail_text}")
    elif halted:
        phase = "Halted"
        desired = c.stalled(reasons.MAX_FAILURES_REACHED,
                            f"{len(failed)} database(s) failed (maxFailures {i.spec.strategy.max_failures}), "
                            f"{len(not_started)} not started stay where they are: {fail_text}")
    elif len(ready) == total:
        phase = "Ready"
        desired = c.ready(f"all {total} databases at {at}")
    elif not in_flight and not started and not waiting and failed:
        phase = "Failed"
        desired = c.stalled(reasons.DATABASES_FAILED, f"{where}; failed: {fail_text}")
    elif held_for_approval:
        assert approval is not None
        phase = "AwaitingApproval"
        how = f"kubectl annotate smigset/{i.name} {set_api.APPROVE_ANNOTATION}={approval['hash']} --overwrite"
        stale = " (the approval given names an earlier canary result)" if approval["state"] == "Stale" else ""
        message = (f"the canary ({_list(list(canary_names))}) is Ready; {len(not_started)} database(s) wait for "
                   f"approval{stale}: {how}")
        desired = [c.Desired(c.READY, c.FALSE, reasons.AWAITING_APPROVAL, message),
                   c.Desired(c.RECONCILING, c.FALSE, reasons.AWAITING_APPROVAL, ""),
                   c.Desired(c.STALLED, c.FALSE, reasons.NOT_STALLED, "")]
    else:
        migrating = len(in_flight) + len(started)
        phase = "Canary" if not canary_done else "Progressing"
        what = f"canary {sum(1 for d in dbs if d.name in set(canary_names) and d in ready)}/{len(canary_names)} " \
               f"ready; " if phase == "Canary" else ""
        message = f"{what}{where}, {migrating} migrating, {len(not_started)} waiting"
        if failed:
            message += f", {len(failed)} failed: {fail_text}"
        desired = c.reconciling(reasons.CANARY if phase == "Canary" else reasons.PROGRESSING, message)

    return {
        "phase": phase,
        "observedGeneration": i.generation,
        "revision": rev,
        "databases": total,
        "updated": sum(1 for d in dbs if d.updated) + len(started),  # those started are updated now
        "ready": len(ready),
        "failed": len(failed),
        "phases": dict(sorted(Counter(states).items())) or None,
        "targetVersion": target,
        "lowestVersion": min(known) if known else None,
        "highestVersion": max(known) if known else None,
        "failing": failing[: set_api.FAILING_LIMIT] or None,
        "failingOmitted": len(failing) - set_api.FAILING_LIMIT if len(failing) > set_api.FAILING_LIMIT else None,
        "canaries": list(canary_names[:CANARIES_LISTED]) or None,
        "approval": approval,
        "conditions": c.apply(i.old_status.get("conditions"), desired, i.generation),
    }


def gate_view(status: Mapping[str, Any], children: Sequence[Mapping[str, Any]], names: Sequence[str]
              ) -> tuple[int | None, str | None]:
    """(the version every database of the set is at, why not known): the lowest current version over the
    set's databases, since a pod may serve only when each of them has its schema."""
    by_db = {(ch.get("metadata") or {}).get("annotations", {}).get(set_api.DATABASE_ANNOTATION): ch
             for ch in children}
    unknown = [d for d in names if not isinstance(((by_db.get(d) or {}).get("status") or {}).get("currentVersion"),
                                                   int)]
    if not names:
        return None, "the set has no databases"
    if unknown:
        return None, f"{len(unknown)} of {len(names)} databases report no version yet ({_list(unknown)})"
    lowest = status.get("lowestVersion")
    return (lowest if isinstance(lowest, int) else None), None
