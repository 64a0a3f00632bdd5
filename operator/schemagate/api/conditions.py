"""Condition types, reasons and the one helper that sets them (Kubernetes API conventions, kstatus).

`Ready` says whether the database is at the target; `Reconciling` that the operator is working towards
it (a Job runs, the Lease is busy); `Stalled` that it cannot progress without someone changing something.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
CONDITION_TYPES = (READY, RECONCILING, STALLED)

# Reasons: CamelCase, stable — pipelines and alerts match on them.
UP_TO_DATE = "UpToDate"
MIGRATING = "Migrating"
PENDING_MIGRATIONS = "PendingMigrations"
WAITING_FOR_LEASE = "WaitingForLease"
MIGRATION_FAILED = "MigrationFailed"
INVALID_MIGRATIONS = "InvalidMigrations"
NO_MIGRATION_FILES = "NoMigrationFiles"
INVALID_SPEC = "InvalidSpec"
SOURCE_NOT_FOUND = "SourceNotFound"
SECRET_NOT_FOUND = "SecretNotFound"
CONNECTION_FAILED = "ConnectionFailed"
AUTHENTICATION_FAILED = "AuthenticationFailed"
TARGET_NOT_FOUND = "TargetNotFound"
DOWNGRADE_REFUSED = "DowngradeRefused"  # no longer set: a downgrade is DowngradeNotAllowed or runs
DOWNGRADE_NOT_ALLOWED = "DowngradeNotAllowed"
NO_DOWN_MIGRATION = "NoDownMigration"
AWAITING_APPROVAL = "AwaitingApproval"
LINT_FAILED = "LintFailed"
BACKUP_FAILED = "BackupFailed"
CHECKSUM_MISMATCH = "ChecksumMismatch"
SOURCE_CHANGED = "SourceChanged"  # the runner saw other files than the plan covered (a ConfigMap edited since)
MISSING_MIGRATIONS = "MissingMigrations"
JOB_FAILED = "JobFailed"
JOB_CONFLICT = "JobConflict"  # the plan's Job name is taken by a Job this object does not own
JOB_REJECTED = "JobRejected"  # the apiserver refused the Job (invalid resources, quota, RBAC, admission)
VERIFICATION_FAILED = "VerificationFailed"
# The spec names what the installer did not allow (controller/allow.py): nothing is created.
IMAGE_NOT_ALLOWED = "ImageNotAllowed"
SERVICE_ACCOUNT_NOT_ALLOWED = "ServiceAccountNotAllowed"
BACKUP_CLAIM_NOT_ALLOWED = "BackupClaimNotAllowed"
NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed"  # cluster-wide: watched, but not one the operator acts in
DATABASE_NOT_ALLOWED = "DatabaseNotAllowed"  # the URL names a host outside --allow-database-host
INVALID_DATABASE_URL = "InvalidDatabaseURL"  # the Secret's value is not something libpq can parse
AHEAD_OF_SOURCE = "AheadOfSource"  # latest: the database holds every file's version and newer ones besides
RUNNER_KILLED = "RunnerKilled"  # the runner's process ended without a result (SIGKILL, OOM, pod deleted)
NO_TRANSACTION_INTERRUPTED = "NoTransactionInterrupted"  # a NO TRANSACTION file stopped part-way: check by hand
DATABASE_UNREADABLE = "DatabaseUnreadable"  # the operator's own read failed while a Job runs: not a verdict
PROGRESSING = "Progressing"
NOT_STALLED = "NotStalled"

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

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


def _short(message: str) -> str:
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
            "message": _short(d.message),
            "observedGeneration": generation,
            "lastTransitionTime": since or now_rfc3339(now),
        })
    out.extend(c for t, c in by_type.items() if t not in wanted)
    return out


def get(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def ready(message: str, reason: str = UP_TO_DATE) -> list[Desired]:
    return [Desired(READY, TRUE, reason, message),
            Desired(RECONCILING, FALSE, reason, ""),
            Desired(STALLED, FALSE, NOT_STALLED, "")]


def reconciling(reason: str, message: str) -> list[Desired]:
    return [Desired(READY, FALSE, reason, message),
            Desired(RECONCILING, TRUE, reason, message),
            Desired(STALLED, FALSE, NOT_STALLED, "")]


def stalled(reason: str, message: str) -> list[Desired]:
    return [Desired(READY, FALSE, reason, message),
            Desired(RECONCILING, FALSE, reason, ""),
            Desired(STALLED, TRUE, reason, message)]
