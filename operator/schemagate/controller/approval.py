"""Manual approval (pure): the plan a person reviews, its hash, and whether an annotation approves it.

The hash covers everything that decides what the Job does: direction, the database's version now, the
target, each step's version and checksum, the source (image), the retry token, the backup claim and the
spec's generation. So an approval given for one plan can never start a different one, nor start its plan
a second time: if anything changed, the annotation names
a plan that no longer exists (Stale) and nothing runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from schemagate.controller import decide as p
from schemagate.controller.plan_lint import STATUS_LIMIT, Finding

HASH_LENGTH = 12

ApprovalState = Literal["Approved", "Pending", "Stale"]


@dataclass(frozen=True)
class AwaitingApproval:
    hash: str
    state: Literal["Pending", "Stale"]
    approved: str | None  # the annotation's value (a stale one names another plan)
    target: int | None
    pending: int | None
    message: str = ""


def direction(i: p.Inputs, target: int | None) -> Literal["up", "down"]:
    return "down" if target is not None and i.db.current > target else "up"


def steps(i: p.Inputs, target: int | None) -> list[p.MigrationFile] | None:
    """The migrations the Job would run, in order (None: an image source, the Job reads them)."""
    if i.migrations is None or target is None:
        return None
    return p.files_to_run(i.migrations, i.db, target)


def plan_hash(i: p.Inputs, target: int | None, planned: Sequence[p.MigrationFile] | None,
              backup_claim: str | None) -> str:
    # The generation too: one Job per (generation, plan), so without it a spec edit (more memory, say)
    # would re-run a failed or restored-over plan on the approval its first run already used.
    doc = {"direction": direction(i, target), "from": i.db.current, "to": target, "source": i.source_key,
           "steps": None if planned is None else [[m.version, m.sha256] for m in planned],
           "retry": i.retry or "", "backup": backup_claim or "", "generation": i.generation}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:HASH_LENGTH]


def state(mode: str, annotation: str | None, current: str, consumed: Iterable[str]) -> ApprovalState:
    """Approved when the annotation names this plan; Stale when it names a plan that never ran."""
    if mode != "Manual" or (annotation or "").strip() == current:
        return "Approved"
    value = (annotation or "").strip()
    return "Stale" if value and value not in set(consumed) else "Pending"


def summary(i: p.Inputs, target: int | None, planned: Sequence[p.MigrationFile] | None, hash_: str,
            *, findings: Sequence[Finding], approval: ApprovalState | None) -> dict[str, Any]:
    """status.plan (camelCase, as the CRD stores it)."""
    down = direction(i, target) == "down"
    doc: dict[str, Any] = {
        "hash": hash_, "direction": "down" if down else "up", "fromVersion": i.db.current, "toVersion": target,
        "migrations": None if planned is None else [
            {"version": m.version, "file": m.name, "sha256": m.sha256, "statements": len(m.down if down else m.up),
             **({"envsubUnchecked": list(m.envsub_unchecked)} if m.envsub_unchecked else {})}
            for m in planned],
        "lint": [f.to_status() for f in findings[:STATUS_LIMIT]] or None,
        "lintOmitted": len(findings) - STATUS_LIMIT if len(findings) > STATUS_LIMIT else None,
        "approval": approval,
    }
    return doc


def message(name: str, gate: AwaitingApproval, planned: Sequence[p.MigrationFile] | None, from_version: int) -> str:
    what = (f"{len(planned)} migration(s) "
            f"({', '.join(m.name for m in planned[:3])}{', ...' if len(planned) > 3 else ''})"
            if planned is not None else "the image's migrations")
    to = "the newest version" if gate.target is None else f"version {gate.target}"
    how = f"kubectl annotate smig/{name} schemagate.io/approve={gate.hash} --overwrite"
    if gate.state == "Stale":
        return (f"approval {gate.approved} is stale: the plan changed since and is now {gate.hash}; nothing was "
                f"applied. Review status.plan ({what}, version {from_version} → {to}), then: {how}")
    return f"plan {gate.hash} awaits approval: {what}, version {from_version} → {to}. Review status.plan, then: {how}"
