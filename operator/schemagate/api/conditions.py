"""Condition types and the one helper that sets them (Kubernetes API conventions, kstatus); the reasons
are in `reasons`.

`Ready` says whether the database is at the target; `Reconciling` that the operator is working towards
it (a Job runs, the Lease is busy); `Stalled` that it cannot progress without someone changing something.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemagate.api import reasons

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
CONDITION_TYPES = (READY, RECONCILING, STALLED)

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

# Condition and Event messages alike: the apiserver takes more, but `kubectl describe` and `get events` show
# one line of it.
MESSAGE_LIMIT = 1024


@dataclass(frozen=True)
class Desired:
    """What one condition should say now; `apply` turns it into the stored form."""

    type: str
    status: str
    reason: str
    message: str = ""


def now_rfc3339(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short(message: str) -> str:
    """`message` cut to MESSAGE_LIMIT, with an ellipsis when it was cut: the one rule for conditions and
    Events."""
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


def apply(existing: list[dict[str, Any]] | None, desired: list[Desired], generation: int | None,
          now: datetime | None = None) -> list[dict[str, Any]]:
    """The full new conditions list (status patches replace lists whole).

    lastTransitionTime moves only when a condition's status changes, so it says since when, not when
    the operator last looked. Conditions of other types (another controller's, a later feature's) stay.
    """
    by_type = {c.get("type"): c for c in existing or []}
    wanted = {d.type: d for d in desired}
    out: list[dict[str, Any]] = []
    for d in desired:
        old = by_type.get(d.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == d.status else None
        out.append({
            "type": d.type,
            "status": d.status,
            "reason": d.reason,
            "message": short(d.message),
            "observedGeneration": generation,
            "lastTransitionTime": since or now_rfc3339(now),
        })
    out.extend(c for t, c in by_type.items() if t not in wanted)
    return out


def get(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def ready(message: str, reason: str = reasons.UP_TO_DATE) -> list[Desired]:
    return [Desired(READY, TRUE, reason, message),
            Desired(RECONCILING, FALSE, reason, ""),
            Desired(STALLED, FALSE, reasons.NOT_STALLED, "")]


def reconciling(reason: str, message: str) -> list[Desired]:
    return [Desired(READY, FALSE, reason, message),
            Desired(RECONCILING, TRUE, reason, message),
            Desired(STALLED, FALSE, reasons.NOT_STALLED, "")]


def stalled(reason: str, message: str) -> list[Desired]:
    return [Desired(READY, FALSE, reason, message),
            Desired(RECONCILING, FALSE, reason, ""),
            Desired(STALLED, TRUE, reason, message)]
