"""The JSON result: the contract with the operator, which reads it as the Job's termination message."""

from __future__ import annotations

import json
from typing import Any

from schemagate.migrate.runner import RunResult

SCHEMA_VERSION = 1
TERMINATION_MESSAGE_LIMIT = 4096  # bytes Kubernetes keeps of a container's termination message


def to_json(r: RunResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schemagate": SCHEMA_VERSION,
        "command": r.command,
        "ok": r.ok,
        "database": r.database.to_json(r.table),
        "versionBefore": r.version_before,
        "versionAfter": r.version_after,
        "applied": [a.to_json() for a in r.applied],
        "pending": list(r.pending),
        "error": r.error.to_json() if r.error else None,
    }
    if r.migrations is not None:
        out["migrations"] = r.migrations
    if r.backup is not None:
        out["backup"] = r.backup
    return out


def _size(doc: dict[str, Any]) -> int:
    return len(compact(doc).encode("utf-8"))


def compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def shrink(doc: dict[str, Any], limit: int = TERMINATION_MESSAGE_LIMIT) -> dict[str, Any]:
    """A copy of `doc` whose compact form fits `limit` bytes; what goes first is what matters least.

    Order: the per-file status list; an error message beyond 1000 bytes; the oldest `applied` entries and
    the tail of `pending` (counted in `appliedOmitted` / `pendingOmitted`, the newest applied step is kept);
    finally the rest of the message. The error's reason, file, version and line are never dropped.
    """
    doc = json.loads(json.dumps(doc))
    if _size(doc) <= limit:
        return doc
    if "migrations" in doc:
        doc["migrationsOmitted"] = len(doc.pop("migrations"))
    err = doc.get("error")
    if err and _size(doc) > limit:
        _truncate_message(err, len(err["message"].encode("utf-8")) - 1000)
    while _size(doc) > limit and (len(doc["applied"]) > 1 or len(doc["pending"]) > 1):
        if len(doc["pending"]) > 1 and len(doc["pending"]) >= len(doc["applied"]):
            keep = len(doc["pending"]) // 2
            doc["pendingOmitted"] = doc.get("pendingOmitted", 0) + len(doc["pending"]) - keep
            doc["pending"] = doc["pending"][:keep]
        else:
            drop = max(1, len(doc["applied"]) // 2)
            doc["appliedOmitted"] = doc.get("appliedOmitted", 0) + drop
            doc["applied"] = doc["applied"][drop:]  # keep the newest: they say where the run stopped
    if err and _size(doc) > limit:
        _truncate_message(err, _size(doc) - limit)
    return doc


def _truncate_message(err: dict[str, Any], over: int) -> None:
    if over <= 0:
        return
    raw = err["message"].encode("utf-8")
    err["message"] = raw[: max(0, len(raw) - over - 3)].decode("utf-8", "ignore") + "..."
