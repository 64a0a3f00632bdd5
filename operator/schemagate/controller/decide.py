"""The pure plan: (spec, migration files, database state, Jobs, Lease) → one Action. No I/O here.

The plan is keyed by a hash of what the Job would do — the target and the checksums of every file up
to it, plus the retry token — so a partly successful run does not make a "new" plan (no hot loop), while
an added or fixed migration does. One Job per (generation, plan): its name carries both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from schemagate.api import reasons
from schemagate.migrate import rules, source

JOB_NAME_MAX = 52  # pods get "-xxxxx" appended; stay well below 63 for labels and hostnames


@dataclass(frozen=True)
class MigrationFile:
    version: int
    name: str
    sha256: str
    has_down: bool = True  # a `-- +goose Down` section exists (goose runs a missing one as a no-op; we refuse)
    no_transaction: bool = False
    # (line, sql) of each statement per direction, for counting and linting; not part of identity
    up: tuple[tuple[int, str], ...] = field(default=(), compare=False, repr=False)
    down: tuple[tuple[int, str], ...] = field(default=(), compare=False, repr=False)
    notes: rules.FileNotes = field(default=rules.FileNotes(), compare=False, repr=False)
    # ENVSUB variables whose values the operator does not know (valueFrom, envFrom): not checked here
    envsub_unchecked: tuple[str, ...] = field(default=(), compare=False)


def migration_file(m: source.Migration) -> MigrationFile:
    """What the plan keeps of a loaded migration file."""
    return MigrationFile(m.version, m.file, m.sha256, m.parsed.has_down, not m.parsed.use_transaction,
                         tuple((st.line, st.sql) for st in m.parsed.up),
                         tuple((st.line, st.sql) for st in m.parsed.down),
                         m.notes, m.parsed.envsub_unchecked)


@dataclass(frozen=True)
class ObservedDatabase:
    current: int
    applied: frozenset[int] = frozenset()
    # SHA-256 recorded when schemagate applied a version (versions goose applied since have none).
    checksums: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class LeaseState:
    holder: str | None = None
    expired: bool = False
    # The holder's Job has finished or is gone (its runner can never renew): the Lease is free now.
    holder_gone: bool = False

    @property
    def free(self) -> bool:
        return self.holder is None or self.expired or self.holder_gone


@dataclass(frozen=True)
class JobState:
    name: str
    phase: Literal["Running", "Succeeded", "Failed"]
    result: dict[str, Any] | None = None
    # Finished: the termination message that was not our JSON (FallbackToLogsOnError). Running: why its pod
    # cannot start, when the kubelet, the scheduler or the Job controller says so (a spec.job.env Secret or
    # key that does not exist, an image it cannot pull, no node that fits, a ServiceAccount that does not
    # exist): "Reason: their words".
    message: str | None = None


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
    db: ObservedDatabase
    lease: LeaseState = LeaseState()
    jobs: tuple[JobState, ...] = ()  # this SchemaMigration's Jobs that still exist
    runs: tuple[PriorRun, ...] = ()  # remembered outcomes, newest first
    retry: str | None = None
    source_key: str = ""  # identifies an image source (image + path) in the plan hash
    allow_downgrade: bool = False


@dataclass(frozen=True)
class UpToDate:
    current: int
    target: int
    ahead: tuple[int, ...] = ()  # latest: applied versions newer than every file (another source applied them)


@dataclass(frozen=True)
class StartJob:
    job: str
    plan: str
    target: int | None
    pending: int | None
    command: Literal["up", "down", "accept-checksum"] = "up"


@dataclass(frozen=True)
class WaitForJob:
    job: str
    target: int | None
    pending: int | None
    waiting: str | None = None  # why its pod cannot start (JobState.message), when it cannot


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


Action = UpToDate | StartJob | WaitForJob | WaitForLease | Refuse


def plan_hash(target: int | None, migrations: Iterable[MigrationFile] | None, retry: str | None,
              source_key: str = "", down: Iterable[MigrationFile] = ()) -> str:
    files = None if migrations is None else [[m.version, m.sha256] for m in sorted(migrations, key=lambda m: m.version)
                                             if target is None or m.version <= target]
    body: dict[str, Any] = {"target": target, "files": files, "retry": retry or "", "source": source_key}
    rollback = [[m.version, m.sha256] for m in down]
    if rollback:  # only then, so every up plan keeps the hash (and Job name) it had before downgrades existed
        body["down"] = rollback
    doc = json.dumps(body, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:8]


def job_name(name: str, generation: int, plan: str) -> str:
    suffix = f"-g{generation}-{plan}"
    return name[: JOB_NAME_MAX - len(suffix)].rstrip("-.") + suffix


def lease_holder(namespace: str, job: str) -> str:
    return f"{namespace}/{job}"


def describe_failure(run_reason: str | None, result: dict[str, Any] | None, fallback: str | None,
                     job: str) -> tuple[str, str]:
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
        edited = edited_after_applied(files, i.db)
        if edited:
            m = edited[0]
            more = f" (and {len(edited) - 1} more)" if len(edited) > 1 else ""
            return Refuse(reasons.CHECKSUM_MISMATCH,
                          f"{m.name} (version {m.version}) changed after it was applied{more}: restore the file, or "
                          f"accept the new content with `schemagate migrate accept-checksum {m.version}`", target)
        if i.target is None and i.db.current > target and versions <= i.db.applied:
            # Every file is applied and the database is further on: another source (a newer release, a
            # second SchemaMigration) migrated it. `latest` of this source is reached, nothing rolls back.
            ahead = tuple(sorted(v for v in i.db.applied if v > target))
            return UpToDate(i.db.current, target, ahead)
        if i.db.current > target:
            refused = _refuse_downgrade(i, files, target)
            if refused is not None:
                return refused
            rollback = rollback_steps(files, i.db, target)
            return _run(i, target, files, rollback, command="down", rollback=rollback)
        pending = files_to_run(files, i.db, target)
        missing = [m for m in pending if m.version < i.db.current]
        if missing:
            names = ", ".join(m.name for m in missing[:5])
            return Refuse(reasons.MISSING_MIGRATIONS,
                          f"{len(missing)} migration(s) older than the database's version {i.db.current} were never "
                          f"applied: {names}", target, len(pending))
        if not pending:
            return UpToDate(i.db.current, target)

    return _run(i, target if files is not None else i.target, files, pending, command="up")


def edited_after_applied(files: Iterable[MigrationFile], db: ObservedDatabase) -> list[MigrationFile]:
    """The applied migrations whose file is not what was applied (by the checksum recorded with its row), in
    version order. The one place that says "edited after applied"."""
    recorded = dict(db.checksums)
    return [m for m in sorted(files, key=lambda m: m.version)
            if m.version in db.applied and recorded.get(m.version, m.sha256) != m.sha256]


def files_to_run(files: Iterable[MigrationFile], db: ObservedDatabase, target: int) -> list[MigrationFile]:
    """The migrations a Job to `target` runs, in the order it runs them: the applied ones above `target`
    newest first when that is a rollback, else the unapplied ones up to `target`. The one place that says
    "which files will run"."""
    ordered = sorted(files, key=lambda m: m.version)
    if db.current > target:
        return rollback_steps(ordered, db, target)
    return [m for m in ordered if m.version <= target and m.version not in db.applied]


def rollback_steps(files: list[MigrationFile], db: ObservedDatabase, target: int) -> list[MigrationFile]:
    """The applied migrations above `target`, newest first: the order down-to runs their Down sections."""
    by_version = {m.version: m for m in files}
    return [by_version[v] for v in sorted(db.applied, reverse=True) if v > target and v in by_version]


def _refuse_downgrade(i: Inputs, files: list[MigrationFile], target: int) -> Refuse | None:
    """Why a rollback to `target` must not start, checked before anything runs; None when it may."""
    if not i.allow_downgrade or i.target is None:
        how = ("set spec.allowDowngrade: true to run the Down migrations" if i.target is not None else
               "targetVersion is latest, which never rolls back: set an explicit targetVersion and "
               "spec.allowDowngrade: true to roll back")
        return Refuse(reasons.DOWNGRADE_NOT_ALLOWED,
                      f"database is at version {i.db.current}, past the target {target}; {how}", target, 0)
    by_version = {m.version: m for m in files}
    above = sorted((v for v in i.db.applied if v > target), reverse=True)
    no_file = [v for v in above if v not in by_version]
    if no_file:
        return Refuse(reasons.NO_DOWN_MIGRATION,
                      f"cannot roll back to version {target}: applied version {no_file[0]} has no migration file "
                      f"in the source; nothing was run", target, len(above))
    no_down = [by_version[v] for v in above if not by_version[v].has_down]
    if no_down:
        names = ", ".join(m.name for m in no_down[:5])
        return Refuse(reasons.NO_DOWN_MIGRATION,
                      f"cannot roll back to version {target}: {names} has no `-- +goose Down` section; "
                      f"nothing was run", target, len(above))
    return None


def _run(i: Inputs, target: int | None, files: list[MigrationFile] | None, pending: list[MigrationFile] | None,
         *, command: Literal["up", "down"], rollback: Sequence[MigrationFile] = ()) -> Action:
    plan_id = plan_hash(target, files, i.retry, i.source_key, rollback)
    name = job_name(i.name, i.generation, plan_id)
    count = None if pending is None else len(pending)
    jobs = {j.name: j for j in i.jobs}
    mine = jobs.get(name)
    prior = next((r for r in i.runs if r.job == name), None)

    if mine is None:
        # Another Job of ours (an older plan) still runs: let it finish rather than race it.
        other = next((j for j in i.jobs if j.phase == "Running"), None)
        if other is not None:
            return WaitForJob(other.name, target, count, other.message)
    if mine is not None and mine.phase == "Running":
        return WaitForJob(name, target, count, mine.message)
    if (mine is not None and mine.phase == "Succeeded") or (prior is not None and prior.outcome == "Succeeded"):
        if files is None:
            current = i.db.current
            return UpToDate(current, i.target if i.target is not None else current)
        where = "pending up to" if command == "up" else "still to roll back down to"
        return Refuse(reasons.VERIFICATION_FAILED,
                      f"Job {name} succeeded but the database is at version {i.db.current} with {count} migration(s) "
                      f"{where} {target}", target, count, name)
    if mine is not None and mine.phase == "Failed" and not (prior is not None and prior.outcome == "Failed"):
        reason, message = describe_failure(None, mine.result, mine.message, name)
        return Refuse(reason, message, target, count, name)
    if prior is not None:  # the Job is gone (TTL, deleted) but we remember how it ended
        if prior.outcome == "Failed":
            return Refuse(prior.reason or reasons.JOB_FAILED, prior.message or f"Job {name} failed", target, count,
                          name)
        return Refuse(reasons.JOB_FAILED, f"Job {name} disappeared before it finished; set the annotation "
                                          f"schemagate.io/retry to a new value to run it again", target, count, name)
    if not i.lease.free and i.lease.holder != lease_holder(i.namespace, name):
        return WaitForLease(i.lease.holder or "", name, target, count)
    return StartJob(name, plan_id, target, count, command)
