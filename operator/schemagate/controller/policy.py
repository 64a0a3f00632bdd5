"""Production policy between the plan and the Job: drift acceptance, lint, manual approval, backup.

`decide` is pure given the lint findings; `evaluate` adds the one piece of I/O (squawk, cached) to the
writing rules' findings (pure). The plan
(decide.py) says what would bring the database to its target; this says whether that may start now.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemagate.api import conditions as c
from schemagate.api import reasons
from schemagate.api import v1alpha1 as api
from schemagate.controller import approval, drift
from schemagate.controller import decide as p
from schemagate.controller import plan_lint as lint_mod
from schemagate.controller import status as st
from schemagate.controller.events import Event

Decided = p.Action | approval.AwaitingApproval
Linter = Callable[[Sequence[p.MigrationFile], str, Sequence[str]], list[lint_mod.Finding]]
FINDINGS_IN_EVENT = 5


@dataclass(frozen=True)
class Decision:
    action: Decided
    plan: dict[str, Any] | None  # status.plan to write
    events: list[Event] = field(default_factory=list)
    approved: str | None = None  # Manual: the plan hash this run was approved as
    backup_file: str | None = None  # on spec.backup's claim, when the Job dumps first


def _consumed(old: Mapping[str, Any]) -> set[str]:
    records = [old.get("currentJob"), old.get("lastJob"), *(old.get("history") or [])]
    return {r["approved"] for r in records if isinstance(r, dict) and r.get("approved")}


def _lint_event(findings: Sequence[lint_mod.Finding], hash_: str) -> Event:
    listed = "; ".join(str(f) for f in findings[:FINDINGS_IN_EVENT])
    more = (f" (and {len(findings) - FINDINGS_IN_EVENT} more in status.plan.lint)"
            if len(findings) > FINDINGS_IN_EVENT else "")
    return Event("Warning", reasons.LINT_FINDINGS, f"plan {hash_}: {len(findings)} lint finding(s): {listed}{more}")


def decide(i: p.Inputs, action: p.Action, spec: api.SchemaMigrationSpec, *, annotations: Mapping[str, str],
           old: Mapping[str, Any], findings: Sequence[lint_mod.Finding] | None, lint_error: str | None = None
           ) -> Decision:
    """Pure: the action that may run now, status.plan, and the Events worth telling.

    `findings` are the writing rules' and squawk's on the planned steps (None when there was nothing to
    lint); `lint_error` says why squawk could not run (the writing rules' findings are still given).
    """
    old_plan: dict[str, Any] | None = old.get("plan")
    if isinstance(action, p.Refuse) and action.reason == reasons.CHECKSUM_MISMATCH and i.migrations is not None:
        return Decision(drift.resolve(i, action, annotations.get(api.ACCEPT_CHECKSUM_ANNOTATION)), old_plan)
    if not isinstance(action, (p.StartJob, p.WaitForLease)):
        return Decision(action, old_plan)  # nothing new would start: keep the plan that got us here
    target = action.target
    planned = approval.steps(i, target)
    hash_ = approval.plan_hash(i, target, planned, spec.backup.claim_name if spec.backup else None)
    found = list(findings or [])
    gate = approval.state(spec.approval, annotations.get(api.APPROVE_ANNOTATION), hash_, _consumed(old))
    shown = approval.summary(i, target, planned, hash_, findings=found,
                             approval=gate if spec.approval == "Manual" else None)
    new_plan = not old_plan or old_plan.get("hash") != hash_
    events: list[Event] = []
    if found and new_plan:
        events.append(_lint_event(found, hash_))
    if lint_error is not None:
        if spec.lint.fail_on != "none":
            return Decision(p.Refuse(reasons.LINT_FAILED, f"plan {hash_}: lint could not run: {lint_error}", target,
                                     action.pending), shown, events)
        if new_plan:
            events.append(Event("Warning", reasons.LINT_UNAVAILABLE, f"plan {hash_}: not linted: {lint_error}"))
    blocked = lint_mod.blocking(found, spec.lint.fail_on)
    if blocked:
        listed = "; ".join(str(f) for f in blocked[:3])
        more = f" (and {len(blocked) - 3} more)" if len(blocked) > 3 else ""
        return Decision(p.Refuse(reasons.LINT_FAILED, f"plan {hash_}: lint.failOn is {spec.lint.fail_on}: "
                                                      f"{listed}{more}; nothing was applied", target, action.pending),
                        shown, events)
    if gate != "Approved":
        awaiting = approval.AwaitingApproval(hash_, gate, annotations.get(api.APPROVE_ANNOTATION), target,
                                             action.pending)
        text = approval.message(i.name, awaiting, planned, i.db.current)
        awaiting = dataclasses.replace(awaiting, message=text)
        if new_plan or (old_plan or {}).get("approval") != gate:
            events.append(Event("Warning" if gate == "Stale" else "Normal",
                                   "ApprovalStale" if gate == "Stale" else "AwaitingApproval", text))
        return Decision(awaiting, shown, events)
    approved = hash_ if spec.approval == "Manual" else None
    backup_file = None
    if isinstance(action, p.StartJob) and spec.backup is not None:
        backup_file = f"{action.job}.dump"
    return Decision(action, shown, events, approved, backup_file)


def evaluate(i: p.Inputs, action: p.Action, spec: api.SchemaMigrationSpec, *, annotations: Mapping[str, str],
             old: Mapping[str, Any], linter: Linter = lint_mod.lint) -> Decision:
    findings: list[lint_mod.Finding] | None = None
    error: str | None = None
    if isinstance(action, (p.StartJob, p.WaitForLease)) and getattr(action, "command", "up") != "accept-checksum":
        planned = approval.steps(i, action.target)
        if planned:
            exclude = list(spec.lint.exclude or [])
            findings = lint_mod.writing_rules(planned, exclude)
            try:
                findings += linter(planned, approval.direction(i, action.target), exclude)
            except lint_mod.LintUnavailable as e:
                error = str(e)
            order = {m.name: k for k, m in enumerate(planned)}  # as they would run, each file's in line order
            findings.sort(key=lambda f: (order.get(f.file, 0), f.line or 0))
    return decide(i, action, spec, annotations=annotations, old=old, findings=findings, lint_error=error)


def for_action(action: Decided, db: p.ObservedDatabase, old: Mapping[str, Any]
               ) -> tuple[str, list[c.Desired], dict[str, Any]]:
    """(phase, conditions, status fields), for the actions this module adds; the rest as status.py says."""
    if isinstance(action, approval.AwaitingApproval):
        message = action.message
        # Reconciling=True: kstatus (Flux, kubectl-wait pipelines) reads Reconciling and Stalled, so an
        # awaiting plan is InProgress there, never Current, and a pipeline does not go on unapproved.
        return "AwaitingApproval", [c.Desired(c.READY, c.FALSE, reasons.AWAITING_APPROVAL, message),
                                    c.Desired(c.RECONCILING, c.TRUE, reasons.AWAITING_APPROVAL, message),
                                    c.Desired(c.STALLED, c.FALSE, reasons.NOT_STALLED, "")], {
            "currentVersion": db.current, "targetVersion": action.target, "pending": action.pending}
    if isinstance(action, p.StartJob) and action.command == "accept-checksum":
        message = f"Job {action.job} is accepting the new checksum of version {action.target}"
        return "Migrating", c.reconciling(reasons.MIGRATING, message), {
            "currentVersion": db.current, "targetVersion": old.get("targetVersion"), "pending": old.get("pending")}
    if isinstance(action, p.StartJob) and action.command == "down":
        phase, _, fields = st.for_action(action, db)
        message = f"Job {action.job} is rolling back from version {db.current} to {action.target}"
        return phase, c.reconciling(reasons.MIGRATING, message), fields
    return st.for_action(action, db)
