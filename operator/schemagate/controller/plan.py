"""The pure plan: (spec, migration files, database state, Jobs, Lease) → one Action. No I/O here.

The plan is keyed by a hash of what the Job would do — the target and the checksums of every file up
to it, plus the retry token — so a partly successful run does not make a "new" plan (no hot loop), while
an added or fixed migration does. One Job per (generation, plan): its name carries both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Union

from schemagate.api import conditions as reasons

JOB_NAME_MAX = 52  # pods get "-xxxxx" appended; stay well below 63 for labels and hostnames


@dataclass(frozen=True)
class MigrationFile:
    version: int
    name: str
    sha256: str


@dataclass(frozen=True)
class DbState:
    current: int
    applied: frozenset[int] = frozenset()
    # SHA-256 recorded when schemagate applied a version (versions goose applied since have none).
    checksums: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class LeaseState:
    holder: str | None = None
    expired: bool = False


@dataclass(frozen=True)
class JobState:
    name: str
    phase: Literal["Running", "Succeeded", "Failed"]
    result: dict[str, Any] | None = None
    message: str | None = None  # termination message that was not our JSON (FallbackToLogsOnError)


@dataclass(frozen=True)
class PriorRun:
    """What status remembers of a Job (Jobs may be TTL-deleted; the outcome stays)."""

    job: str
    outcome: str
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Inputs:
    name: str
    namespace: str
    generation: int
    target: int | None  # None = latest
    migrations: tuple[MigrationFile, ...] | None  # None = unknown (image source: the Job reads them)
    db: DbState
    lease: LeaseState = LeaseState()
    jobs: tuple[JobState, ...] = ()  # this SchemaMigration's Jobs that still exist
    runs: tuple[PriorRun, ...] = ()  # remembered outcomes, newest first
    retry: str | None = None
    source_key: str = ""  # identifies an image source (image + path) in the plan hash


@dataclass(frozen=True)
class UpToDate:
    current: int
    target: int


@dataclass(frozen=True)
class RunUp:
    job: str
    plan: str
    target: int | None
    pending: int | None


@dataclass(frozen=True)
class WaitForJob:
    job: str
    target: int | None
    pending: int | None


@dataclass(frozen=True)
class WaitForLease:
    holder: str
    job: str
    target: int | None
    pending: int | None


@dataclass(frozen=True)
class Refuse:
    reason: str
    message: str
    target: int | None = None
    pending: int | None = None
    job: str | None = None


Action = Union[UpToDate, RunUp, WaitForJob, WaitForLease, Refuse]


def plan_hash(target: int | None, migrations: Iterable[MigrationFile] | None, retry: str | None,
              source_key: str = "") -> str:
    files = None if migrations is None else [[m.version, m.sha256] for m in sorted(migrations, key=lambda m: m.version)
                                             if target is None or m.version <= target]
    doc = json.dumps({"target": target, "files": files, "retry": retry or "", "source": source_key}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:8]


def job_name(name: str, generation: int, plan: str) -> str:
    suffix = f"-g{generation}-{plan}"
    return name[: JOB_NAME_MAX - len(suffix)].rstrip("-.") + suffix


def lease_holder(namespace: str, job: str) -> str:
    return f"{namespace}/{job}"


def describe_failure(run_reason: str | None, result: dict[str, Any] | None, fallback: str | None, job: str) -> tuple[str, str]:
    """(reason, message) for a failed Job, naming file, statement and SQL error when the runner said so."""
    error = (result or {}).get("error") or {}
    if not error:
        tail = (fallback or "").strip().splitlines()[-1:] or ["no result from the runner"]
        return run_reason or reasons.JOB_FAILED, f"Job {job} failed: {tail[0][:300]}"
    reason = str(error.get("reason") or reasons.MIGRATION_FAILED)
    message = str(error.get("message") or "failed")
    parts = []
    where = error.get("file")
    if where and str(where) not in message:
        line = error.get("line")
        parts.append(f"{where}{f':{line}' if line else ''}")
    if error.get("sqlstate") and str(error["sqlstate"]) not in message:
        message += f" (SQLSTATE {error['sqlstate']})"
    parts.append(message)
    statement = error.get("statement")
    if isinstance(statement, int) and not isinstance(statement, bool):
        if "statement" not in message:
            parts.append(f"statement #{statement}")
    elif statement:
        parts.append(f"statement: {' '.join(str(statement).split())[:200]}")
    return reason, f"Job {job}: " + "; ".join(parts)


def plan(i: Inputs) -> Action:
    files = None if i.migrations is None else sorted(i.migrations, key=lambda m: m.version)
    target = i.target
    pending: list[MigrationFile] | None = None
    if files is not None:
        if not files:
            return Refuse(reasons.NO_MIGRATION_FILES, "the source holds no goose .sql migration file", target, 0)
        versions = {m.version for m in files}
        newest = files[-1].version if files else 0
        if target is None:
            target = newest
        elif target != 0 and target not in versions:
            return Refuse(reasons.TARGET_NOT_FOUND,
                          f"targetVersion {target} is not among the migration files (newest is {newest})", target)
        if i.db.current > target:
            return Refuse(reasons.DOWNGRADE_REFUSED,
                          f"database is at version {i.db.current}, past the target {target}; "
                          f"schemagate migrates up only", target, 0)
        recorded = dict(i.db.checksums)
        edited = [m for m in files if m.version in i.db.applied and recorded.get(m.version, m.sha256) != m.sha256]
        if edited:
            m = edited[0]
            more = f" (and {len(edited) - 1} more)" if len(edited) > 1 else ""
            return Refuse(reasons.CHECKSUM_MISMATCH,
                          f"{m.name} (version {m.version}) changed after it was applied{more}: restore the file, or "
                          f"accept the new content with `schemagate migrate accept-checksum {m.version}`", target)
        pending = [m for m in files if m.version <= target and m.version not in i.db.applied]
        missing = [m for m in pending if m.version < i.db.current]
        if missing:
            names = ", ".join(m.name for m in missing[:5])
            return Refuse(reasons.MISSING_MIGRATIONS,
                          f"{len(missing)} migration(s) older than the database's version {i.db.current} were never "
                          f"applied: {names}", target, len(pending))
        if not pending:
            return UpToDate(i.db.current, target)

    plan_id = plan_hash(target if files is not None else i.target, files, i.retry, i.source_key)
    name = job_name(i.name, i.generation, plan_id)
    count = None if pending is None else len(pending)
    jobs = {j.name: j for j in i.jobs}
    mine = jobs.get(name)
    prior = next((r for r in i.runs if r.job == name), None)

    if mine is None:
        # Another Job of ours (an older plan) still runs: let it finish rather than race it.
        other = next((j for j in i.jobs if j.phase == "Running"), None)
        if other is not None:
            return WaitForJob(other.name, target, count)
    if mine is not None and mine.phase == "Running":
        return WaitForJob(name, target, count)
    if (mine is not None and mine.phase == "Succeeded") or (prior is not None and prior.outcome == "Succeeded"):
        if files is None:
            current = i.db.current
            return UpToDate(current, i.target if i.target is not None else current)
        return Refuse(reasons.VERIFICATION_FAILED,
                      f"Job {name} succeeded but the database is at version {i.db.current} with {count} migration(s) "
                      f"pending up to {target}", target, count, name)
    if mine is not None and mine.phase == "Failed" and not (prior is not None and prior.outcome == "Failed"):
        reason, message = describe_failure(None, mine.result, mine.message, name)
        return Refuse(reason, message, target, count, name)
    if prior is not None:  # the Job is gone (TTL, deleted) but we remember how it ended
        if prior.outcome == "Failed":
            return Refuse(prior.reason or reasons.JOB_FAILED, prior.message or f"Job {name} failed", target, count, name)
        return Refuse(reasons.JOB_FAILED, f"Job {name} disappeared before it finished; set the annotation "
                                          f"schemagate.io/retry to a new value to run it again", target, count, name)
    if i.lease.holder and not i.lease.expired and i.lease.holder != lease_holder(i.namespace, name):
        return WaitForLease(i.lease.holder, name, target, count)
    return RunUp(name, plan_id, target if files is not None else i.target, count)
