"""What a command will do, decided from the files and the tracking table's rows alone (no I/O).

The rules are goose's (up.go, down.go, redo.go, migrate.go EnsureDBVersion):
- the current version is the newest row (by id) whose version is applied, skipping versions whose newest
  row says not-applied (rows of very old goose databases);
- `up` applies files newer than the highest version in the table; files below it that are not in the
  table are "missing" and refused unless allowed, then applied first;
- `down` rolls back the current version; `down-to V` repeats until the current version is ≤ V.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemagate.api import reasons
from schemagate.migrate.errors import MigrateError
from schemagate.migrate.source import Migration

Direction = Literal["up", "down"]


@dataclass(frozen=True)
class VersionRow:
    id: int
    version: int
    is_applied: bool
    tstamp: datetime | None = None


@dataclass(frozen=True)
class DbState:
    """The tracking table's rows, newest (highest id) first."""

    rows: tuple[VersionRow, ...] = ()

    @property
    def current_version(self) -> int:
        skipped: set[int] = set()
        for row in self.rows:
            if row.version in skipped:
                continue
            if row.is_applied:
                return row.version
            skipped.add(row.version)
        return 0

    @property
    def known_versions(self) -> set[int]:
        return {r.version for r in self.rows}

    @property
    def max_version(self) -> int:
        return max(self.known_versions, default=0)

    def latest_rows(self) -> dict[int, VersionRow]:
        """Each version's newest row: it says whether the version is applied now, and since when."""
        latest: dict[int, VersionRow] = {}
        for row in self.rows:
            latest.setdefault(row.version, row)
        return latest

    @property
    def applied_versions(self) -> set[int]:
        return {v for v, r in self.latest_rows().items() if r.is_applied and v != 0}

    def without(self, version: int) -> DbState:
        return DbState(tuple(r for r in self.rows if r.version != version))

    def with_applied(self, version: int) -> DbState:
        next_id = max((r.id for r in self.rows), default=0) + 1
        return DbState((VersionRow(next_id, version, True), *self.rows))


@dataclass(frozen=True)
class Step:
    migration: Migration
    direction: Direction


def pending(migrations: Sequence[Migration], state: DbState) -> list[int]:
    applied = state.applied_versions
    return [m.version for m in migrations if m.version not in applied]


def _require_target(migrations: Sequence[Migration], target: int, allow_zero: bool) -> None:
    if allow_zero and target == 0:
        return
    if not any(m.version == target for m in migrations):
        raise MigrateError(reasons.TARGET_NOT_FOUND, f"version {target} is not a migration in the source "
                           f"(known versions: {_versions_text(migrations)})", version=target)


def _versions_text(migrations: Sequence[Migration]) -> str:
    versions = [str(m.version) for m in migrations]
    return ", ".join(versions[:10] + (["..."] if len(versions) > 10 else [])) or "none"


def plan_up(migrations: Sequence[Migration], state: DbState, *, target: int | None = None,
            allow_missing: bool = False, by_one: bool = False) -> list[Step]:
    if target is not None:
        _require_target(migrations, target, allow_zero=False)
    eligible = [m for m in migrations if target is None or m.version <= target]
    known = state.known_versions
    db_max = state.max_version
    missing = [m for m in eligible if m.version not in known and m.version < db_max]
    if missing and not allow_missing:
        listed = "; ".join(f"version {m.version}: {m.file}" for m in missing)
        raise MigrateError(
            reasons.MISSING_MIGRATIONS,
            f"found {len(missing)} missing migration(s) before current version {db_max}: {listed}; "
            "apply them out of order with --allow-missing",
            file=missing[0].file, version=missing[0].version,
        )
    todo = (missing if allow_missing else []) + [m for m in eligible if m.version not in known and m.version > db_max]
    if by_one:
        if not todo:
            raise MigrateError(reasons.NO_NEXT_VERSION,
                               f"no next version found: the database is at version {state.current_version}")
        todo = todo[:1]
    return [Step(m, "up") for m in todo]


def _down_one(migrations: Sequence[Migration], state: DbState) -> Step:
    current = state.current_version
    if current == 0:
        raise MigrateError(reasons.NO_CURRENT_VERSION, "nothing to roll back: the database is at version 0")
    for m in migrations:
        if m.version == current:
            return Step(m, "down")
    raise MigrateError(reasons.NO_DOWN_MIGRATION,
                       f"version {current} is applied but no migration file for it is in the source, "
                       "so its Down section cannot run", version=current)


def plan_down(migrations: Sequence[Migration], state: DbState, *, target: int | None = None) -> list[Step]:
    """`down` (target None: one step) or `down-to target`."""
    if target is None:
        return [_down_one(migrations, state)]
    _require_target(migrations, target, allow_zero=True)
    steps: list[Step] = []
    while state.current_version != 0 and state.current_version > target:
        step = _down_one(migrations, state)
        steps.append(step)
        state = state.without(step.migration.version)
    return steps


def plan_redo(migrations: Sequence[Migration], state: DbState) -> list[Step]:
    step = _down_one(migrations, state)
    return [step, Step(step.migration, "up")]
