"""The SchemaMigration's status from what was observed and decided (pure).

State lives here, not on Jobs: a finished Job's outcome is copied into `lastJob` and `history` the first
time it is seen, so TTL deletion loses nothing and each outcome yields exactly one Event.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from schemagate.api import conditions as c
from schemagate.api import reasons
from schemagate.api.v1alpha1 import HISTORY_LIMIT
from schemagate.controller import decide as p
from schemagate.controller import mergepatch
from schemagate.controller.events import Event
from schemagate.controller.observe import JobInfo


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 1)


def finished_record(base: dict[str, Any] | None, info: JobInfo, now: str) -> dict[str, Any]:
    state = info.state
    record = dict(base or {"job": state.name})
    record["outcome"] = state.phase
    record.setdefault("startedAt", info.started)
    if info.created:
        record["createdAt"] = info.created
    record["finishedAt"] = info.finished or now
    result = state.result or {}
    if result.get("versionBefore") is not None:
        record["versionBefore"] = result["versionBefore"]
    if result.get("versionAfter") is not None:
        record["versionAfter"] = result["versionAfter"]
    if isinstance(result.get("applied"), list):
        # A trimmed termination message keeps the first entries and counts the rest in appliedOmitted.
        omitted = result.get("appliedOmitted")
        record["applied"] = len(result["applied"]) + (omitted if isinstance(omitted, int) else 0)
    if isinstance(result.get("backup"), dict):
        record["backup"] = result["backup"].get("file")
    if state.phase == "Failed":
        reason, message = p.describe_failure(None, state.result, state.message, state.name)
        record["reason"], record["message"] = reason, message
    else:
        record["reason"], record["message"] = reasons.UP_TO_DATE, None
    record["durationSeconds"] = _seconds(record.get("startedAt"), record.get("finishedAt"))
    return record


Order = tuple[str, str]


def _order(created: str | None, started: str | None, job: str) -> Order:
    """When a run began, by the apiserver's clock (creationTimestamp; the start time for records written
    before that was kept), then its name: Jobs of one SchemaMigration run one after another."""
    return (created or started or "", job)


def _record_order(record: dict[str, Any]) -> Order:
    return _order(record.get("createdAt"), record.get("startedAt"), record.get("job") or "")


class Recorded:
    """Which finished Jobs status already accounts for: those in `history`, and, once `history` is full,
    every Job older than its oldest record. Those fell out of it but stay listed until their TTL (a day):
    recording them again would push out another, every resync, each with an Event.
    """

    def __init__(self, history: list[dict[str, Any]] | None):
        records = list(history or [])
        self.names = frozenset(r.get("job") for r in records if r.get("job"))
        self.floor = min(map(_record_order, records)) if len(records) >= HISTORY_LIMIT else None

    def __call__(self, name: str, created: str | None, started: str | None = None) -> bool:
        return name in self.names or (self.floor is not None and _order(created, started, name) <= self.floor)


def absorb_jobs(old: dict[str, Any], infos: list[JobInfo], now: str) -> tuple[dict[str, Any], list[Event]]:
    """currentJob/lastJob/history after looking at this SchemaMigration's Jobs; Events for new outcomes.

    `history` stays newest first by creation and `lastJob` is the newest finished run: a Job that finishes
    late is recorded where it belongs, and an old one never takes lastJob back.
    """
    history = list(old.get("history") or [])
    current = old.get("currentJob")
    last = old.get("lastJob")
    recorded = Recorded(history)
    absorbed: set[str] = set()
    events: list[Event] = []
    for info in sorted(infos, key=lambda i: _order(i.created, i.started, i.state.name)):
        name = info.state.name
        if info.state.phase == "Running":
            if not current or current.get("job") != name:
                current = {"job": name, "outcome": "Running", "startedAt": info.started}
            continue
        if name in absorbed or recorded(name, info.created, info.started):
            continue
        base = current if current and current.get("job") == name else None
        record = finished_record(base, info, now)
        held = cannot_start(old.get("conditions"), name)
        if held is not None and record["outcome"] == "Failed" and not info.state.result:
            # Stopped by its deadline (or deleted) while it could not start: the pod is gone, status said why.
            record["message"] = f"{record['message']}; when last seen, its pod could not start: {held[1]}"
        history.append(record)
        absorbed.add(name)
        if last is None or _record_order(record) > _record_order(last):
            last = record
        if base is not None:
            current = None
        if record["outcome"] == "Succeeded":
            events.append(Event("Normal", reasons.MIGRATION_SUCCEEDED,
                                f"Job {name} migrated the database to version {record.get('versionAfter', '?')}"))
        else:
            events.append(Event("Warning", record["reason"], record["message"]))
    if current and current.get("job") in recorded.names | absorbed:
        current = None
    history.sort(key=_record_order, reverse=True)
    return {"currentJob": current, "lastJob": last, "history": history[:HISTORY_LIMIT] or None}, events


def prior_runs(runs: dict[str, Any]) -> tuple[p.PriorRun, ...]:
    records = list(runs.get("history") or [])
    if runs.get("currentJob"):
        records.insert(0, runs["currentJob"])
    return tuple(p.PriorRun(r["job"], r.get("outcome", "Running"), r.get("reason"), r.get("message"))
                 for r in records if r.get("job"))


# How the Reconciling message says that a running Job's pod cannot start (observe._waiting's words); read
# back by `cannot_start`, so the Warning is posted once per cause and a Job that reaches its deadline meanwhile
# says what held it. The kubelet, the scheduler and the Job controller keep retrying: not Stalled.
CANNOT_START = "; its pod cannot start: "
RETRIED = " (retried until spec.job.activeDeadlineSeconds)"
_MIGRATING_JOB = re.compile(r"Job (\S+) is migrating ")
# The kubelet alternates these while it backs off from pulling one image: one cause, one Warning.
_SAME_CAUSE = {"ImagePullBackOff": "ErrImagePull"}


def cannot_start(conditions: list[dict[str, Any]] | None, job: str | None = None) -> tuple[str, str] | None:
    """(Job, cause) when the Reconciling condition says a Job's pod cannot start (that of `job`, if given)."""
    cond = c.get(conditions, c.RECONCILING)
    if not cond or cond.get("status") != c.TRUE or cond.get("reason") != reasons.MIGRATING:
        return None
    head, found, cause = str(cond.get("message") or "").partition(CANNOT_START)
    named = _MIGRATING_JOB.match(head)
    if not found or named is None or (job is not None and named.group(1) != job):
        return None
    return named.group(1), cause.removesuffix(RETRIED)


def _kind(cause: str) -> str:
    word = re.match(r"[A-Za-z]*", cause)
    first = word.group(0) if word else ""
    return _SAME_CAUSE.get(first, first)


def cannot_start_event(old: dict[str, Any], new: dict[str, Any]) -> Event | None:
    """A Warning when a Job's pod cannot start, once per Job and kind of cause (the kubelet's or the Job
    controller's reason), not at every resync while it stays so."""
    after = cannot_start(new.get("conditions"))
    if after is None:
        return None
    before = cannot_start(old.get("conditions"), after[0])
    if before is not None and _kind(before[1]) == _kind(after[1]):
        return None
    return Event("Warning", reasons.POD_CANNOT_START, f"Job {after[0]}: its pod cannot start: {after[1]}")


def for_action(action: p.Action, db: p.ObservedDatabase) -> tuple[str, list[c.Desired], dict[str, Any]]:
    """(phase, conditions, extra status fields) for a plan's action."""
    if isinstance(action, p.UpToDate) and action.ahead:
        shown = ", ".join(map(str, action.ahead[:10])) + (" ..." if len(action.ahead) > 10 else "")
        return "Ready", c.ready(f"database at version {action.current}, ahead of this source: every file up to "
                                f"its newest, version {action.target}, is applied, and version(s) {shown} besides "
                                f"(applied from another source); nothing to do", reasons.AHEAD_OF_SOURCE), {
            "currentVersion": action.current, "targetVersion": action.target, "pending": 0}
    if isinstance(action, p.UpToDate):
        return "Ready", c.ready(f"database at version {action.current} (target {action.target})"), {
            "currentVersion": action.current, "targetVersion": action.target, "pending": 0}
    fields = {"currentVersion": db.current, "targetVersion": action.target, "pending": action.pending}
    if isinstance(action, (p.StartJob, p.WaitForJob)):
        target = "the newest version" if action.target is None else f"version {action.target}"
        stuck = (f"{CANNOT_START}{action.waiting}{RETRIED}" if isinstance(action, p.WaitForJob) and action.waiting
                 else "")
        return "Migrating", c.reconciling(reasons.MIGRATING, f"Job {action.job} is migrating from version {db.current} "
                                                             f"to {target}{stuck}"), fields
    if isinstance(action, p.WaitForLease):
        return "Waiting", c.reconciling(reasons.WAITING_FOR_LEASE, f"waiting for the database's Lease, held by "
                                                                   f"{action.holder}"), \
            {**fields, "leaseHolder": action.holder}
    assert isinstance(action, p.Refuse)
    return "Failed", c.stalled(action.reason, action.message), fields


def unreadable(job: str, message: str) -> tuple[str, list[c.Desired]]:
    return "Migrating", c.reconciling(reasons.DATABASE_UNREADABLE, f"Job {job} is running; the operator's own read of "
                                                                   f"the database failed ({message}); it looks again "
                                                                   f"at the next resync")


def fill_version_after(runs: dict[str, Any], infos: list[JobInfo], db: p.ObservedDatabase) -> None:
    """A run just recorded whose runner could not say where it left the database gets what the database
    holds now, read in this same reconcile (its Job has ended: nothing of ours runs on it)."""
    running = any(i.state.phase == "Running" for i in infos)
    for record in [runs.get("lastJob"), *(runs.get("history") or [])[:1]]:
        if isinstance(record, dict) and record.get("versionAfter") is None and record.get("finishedAt") \
                and not running:
            record["versionAfter"] = db.current


def blocked(reason: str, message: str) -> tuple[str, list[c.Desired]]:
    return "Failed", c.stalled(reason, message)


def compose(  # noqa: PLR0917  tests/unit/test_job_outcomes.py passes seven by position
        old: dict[str, Any], generation: int, phase: str, desired: list[c.Desired], fields: dict[str, Any],
        runs: dict[str, Any], lease_name: str | None, now: datetime | None = None) -> dict[str, Any]:
    """The full status. Cleared fields are null so a merge patch removes them."""
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": generation,
        "conditions": c.apply(old.get("conditions"), desired, generation, now),
        "currentVersion": old.get("currentVersion"),
        "targetVersion": old.get("targetVersion"),
        "pending": old.get("pending"),
        "leaseHolder": None,
        "leaseName": lease_name or old.get("leaseName"),
        **runs,
    }
    status.update(fields)
    return {k: mergepatch.replacing(old.get(k), v) for k, v in status.items()}


def stalled_event(old: dict[str, Any], new: dict[str, Any]) -> Event | None:
    """A Warning when the object becomes Stalled or its reason changes (job failures have their own)."""
    before, after = c.get(old.get("conditions"), c.STALLED), c.get(new.get("conditions"), c.STALLED)
    if not after or after["status"] != c.TRUE:
        return None
    if before and before["status"] == c.TRUE and before["reason"] == after["reason"]:
        return None
    return Event("Warning", after["reason"], after["message"])
