"""Runs a plan against PostgreSQL: lock, timeouts, one transaction per migration, stop at the first failure.

Everything that can be decided without the database has been (files parsed, names checked); this module
connects, reads the tracking table, plans, and executes. Failures become MigrateError with a reason
constant; the run's progress is kept in RunResult so a failure still says how far it got.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from schemagate.api import reasons
from schemagate.api.shared import is_pg_duration
from schemagate.migrate import connection, dburl, plan, sqlscan, store
from schemagate.migrate.errors import MigrateError
from schemagate.migrate.parser import Statement
from schemagate.migrate.source import Migration


def check_duration(flag: str, value: str | None) -> None:
    if value is not None and not is_pg_duration(value):
        raise MigrateError(reasons.INVALID_ARGUMENTS,
                           f"{flag} {value!r} is not a PostgreSQL duration (e.g. 5s, 500ms, 2min, 0 = no limit)")


@dataclass
class RunOptions:
    table: store.TableName
    allow_missing: bool = False
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    lock_wait: float = 300.0  # seconds to wait for the advisory lock
    log: Callable[[str], None] = lambda _msg: None  # progress lines for humans (stderr)
    # Told when a step starts and when it ends: the runner's progress, written where the operator can read
    # it should the process die without a word (SIGKILL, OOM, node loss).
    on_progress: Callable[[RunResult], None] = lambda _result: None


@dataclass
class AppliedStep:
    version: int
    file: str
    direction: str
    duration_ms: int

    no_transaction: bool = False  # said of the step in progress only: what an interruption leaves behind

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "file": self.file, "direction": self.direction,
                "durationMs": self.duration_ms}


@dataclass
class RunResult:
    command: str
    database: dburl.Target
    table: str
    version_before: int | None = None
    version_after: int | None = None
    applied: list[AppliedStep] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    error: MigrateError | None = None
    migrations: list[dict[str, Any]] | None = None  # status only
    notes: list[str] = field(default_factory=list)  # e.g. checksums adopted
    in_progress: AppliedStep | None = None  # the step running right now (said when interrupted)
    backup: dict[str, Any] | None = None  # --backup-file: {"file", "bytes"} of the dump taken first

    @property
    def ok(self) -> bool:
        return self.error is None


def connect(url: str) -> psycopg.Connection[Any]:
    """The runner's session (`connection.open_session`): failures classified, password never shown."""
    return connection.open_session(url)


def acquire_lock(conn: psycopg.Connection, wait_seconds: float, log: Callable[[str], None]) -> None:
    deadline = time.monotonic() + wait_seconds
    delay = 0.2
    told = False
    while not store.try_lock(conn):
        if time.monotonic() >= deadline:
            holder = store.lock_holder(conn)
            raise MigrateError(
                reasons.LOCK_TIMEOUT,
                f"another migration run{' (' + holder + ')' if holder else ''} held the advisory lock "
                f"{store.ADVISORY_LOCK_KEY} for longer than --lock-wait {wait_seconds:g}s; retry when it has "
                "finished")
        if not told:
            log(f"waiting up to {wait_seconds:g}s for the migration lock held by another run")
            told = True
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 2.0)


def set_timeouts(conn: psycopg.Connection, opts: RunOptions) -> None:
    connection.end_if_client_silent(conn)  # the session of a migration never waits on a vanished client
    for name, value in (("lock_timeout", opts.lock_timeout), ("statement_timeout", opts.statement_timeout)):
        if value is not None:
            try:
                conn.execute("SELECT set_config(%s, %s, false)", (name, value.strip().replace(" ", "")))
            except psycopg.Error as e:
                raise MigrateError(reasons.INVALID_ARGUMENTS, f"--{name.replace('_', '-')} {value!r}: "
                                   f"{e.diag.message_primary or e}") from None


# The server ended the session because its client was silent (connection.end_if_client_silent).
_CLIENT_SILENT = {"25P03": "idle_in_transaction_session_timeout", "57P05": "idle_session_timeout"}


def _primary(e: psycopg.Error) -> str:
    """Postgres's one-line message; psycopg's own text when the error never reached the server."""
    text = e.diag.message_primary or str(e).strip().splitlines()[0]
    setting = _CLIENT_SILENT.get(e.sqlstate or "")
    if setting:
        text += (f" (the server heard nothing from this runner for its {setting}: the network between the "
                 "Job and the database was cut, or the runner stalled)")
    return text


def _statement_error(m: Migration, direction: str, n: int, st: Statement, *, e: psycopg.Error,
                     use_tx: bool) -> MigrateError:
    diag = e.diag
    primary = _primary(e)
    sqlstate = e.sqlstate or diag.sqlstate
    where = ""
    pos = diag.statement_position
    if pos and pos.isdigit():
        err_line = st.line + st.sql[: int(pos) - 1].count("\n")
        where = f", at line {err_line}"
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    first = st.first_line if len(st.first_line) <= 80 else st.first_line[:77] + "..."
    if use_tx:
        aftermath = "rolled back, no version row written"
    elif n > 1:
        aftermath = (f"NO TRANSACTION: statement{'s 1-' if n > 2 else ' '}{n - 1} of this file stay"
                     f"{'' if n > 2 else 's'} applied, no version row written")
    else:
        aftermath = "NO TRANSACTION: nothing of this file was applied, no version row written"
    code = f"[SQLSTATE {sqlstate}{where}]" if sqlstate else f"[{type(e).__name__}{where}]"
    return MigrateError(
        reasons.MIGRATION_FAILED,
        f"{m.file}: {direction} statement {n} (line {st.line}: {first}) failed: {primary}{detail} "
        f"{code}; {aftermath}",
        file=m.file, version=m.version, line=st.line, statement=n, sqlstate=sqlstate,
    )


def _bookkeeping_error(m: Migration, t: store.TableName, direction: str, use_tx: bool,
                       e: psycopg.Error) -> MigrateError:
    # The statements have run: say which file, and whether they were undone.
    aftermath = ("rolled back, nothing of it applied" if use_tx else
                 f"NO TRANSACTION: its {direction} statements ran and stay applied, but {t.goose} "
                 "was not updated; record or undo it by hand")
    return MigrateError(
        reasons.DATABASE_ERROR,
        f"{m.file}: recording the {direction} of version {m.version} failed: {_primary(e)} "
        f"[SQLSTATE {e.sqlstate}]; {aftermath}",
        file=m.file, version=m.version, sqlstate=e.sqlstate)


def _commit_error(m: Migration, direction: str, e: psycopg.Error) -> MigrateError:
    detail = f" ({e.diag.message_detail})" if e.diag.message_detail else ""
    return MigrateError(
        reasons.MIGRATION_FAILED,
        f"{m.file}: {direction} failed at COMMIT (e.g. a deferred constraint): {_primary(e)}{detail} "
        f"[SQLSTATE {e.sqlstate}]; rolled back, no version row written",
        file=m.file, version=m.version, sqlstate=e.sqlstate)


def _record(conn: psycopg.Connection, t: store.TableName, step: plan.Step) -> psycopg.Cursor:
    m = step.migration
    if step.direction == "up":
        return store.record_applied(conn, t, m.version, m.file, m.sha256)
    return store.record_rolled_back(conn, t, m.version)


def _run_step(conn: psycopg.Connection, t: store.TableName, step: plan.Step) -> None:
    """One migration: statements, version row and checksum row, in as few round trips as goose's
    semantics allow.

    A transactional file whose statements are each one command goes as one pipeline (BEGIN, statements,
    bookkeeping, COMMIT, then a single Sync): one round trip. PostgreSQL skips everything after a failing
    command until the Sync, so nothing after it runs, and the commands answer in order, so the first one
    without a result is the one that failed. A statement that may hold several commands cannot be
    pipelined (the extended protocol refuses them) and runs alone, as goose sends it. NO TRANSACTION files
    run statement by statement: inside one pipeline PostgreSQL would treat them as a transaction block,
    which CREATE INDEX CONCURRENTLY refuses."""
    m = step.migration
    direction = step.direction
    statements = [(n, st) for n, st in enumerate(m.parsed.up if direction == "up" else m.parsed.down, start=1)
                  if st.sql]  # goose can produce an empty statement (an empty StatementBegin/End block)
    use_tx = m.parsed.use_transaction

    def simple(n: int, st: Statement) -> None:
        try:
            conn.execute(st.sql)  # no parameters: the simple protocol, `%` and multi-command bodies intact
        except psycopg.Error as e:
            raise _statement_error(m, direction, n, st, e=e, use_tx=use_tx) from e

    if not use_tx:
        if direction == "up":
            store.mark_started(conn, t, m.version, m.file, m.sha256)
        for n, st in statements:
            try:
                simple(n, st)
            except MigrateError:
                if n == 1 and direction == "up":  # nothing of it ran: no one needs to look
                    with contextlib.suppress(psycopg.Error):
                        store.clear_started(conn, t, m.version)
                raise
        try:
            _in_transaction(conn, True, lambda: _record(conn, t, step))
        except psycopg.Error as e:
            raise _bookkeeping_error(m, t, direction, use_tx, e) from e
        return

    pipelined = all(sqlscan.one_statement(st.sql) for _, st in statements)
    sent: list[_Sent] = []  # what went into the transaction after BEGIN, in order

    def body() -> None:
        for n, st in statements:
            if pipelined:
                sent.append(_Sent(n, st))
                sent[-1].cursor = conn.execute(st.sql)
            else:
                simple(n, st)
        sent.append(_Sent(None, None))
        sent[-1].cursor = _record(conn, t, step)

    try:
        _in_transaction(conn, pipelined, body)
    except psycopg.Error as e:
        failed = next((s for s in sent if not s.answered), None)
        if failed is None:
            raise _commit_error(m, direction, e) from e  # every command answered: it was COMMIT
        if failed.statement is None or failed.n is None:
            raise _bookkeeping_error(m, t, direction, use_tx, e) from e
        raise _statement_error(m, direction, failed.n, failed.statement, e=e, use_tx=use_tx) from e


def _in_transaction(conn: psycopg.Connection, pipelined: bool, body: Callable[[], object]) -> None:
    """BEGIN, body, COMMIT; rolled back on any failure. Pipelined: all of it before a single Sync.

    BEGIN and COMMIT are sent as plain commands: psycopg's transaction() syncs the pipeline after BEGIN,
    which would cost a round trip of its own."""
    try:
        with conn.pipeline() if pipelined else contextlib.nullcontext():
            conn.execute("BEGIN")
            body()
            conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT has ended the transaction; an earlier failure (or Ctrl-C) leaves it open.
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
        raise


@dataclass
class _Sent:
    n: int | None  # the statement's number in its file; None for the bookkeeping
    statement: Statement | None
    # None until execute() returned: a fast server can answer, and psycopg raise, before it does.
    cursor: psycopg.Cursor | None = None

    @property
    def answered(self) -> bool:
        """PostgreSQL answers in order and skips everything after a failure: the first unanswered failed."""
        return self.cursor is not None and self.cursor.pgresult is not None


def checksum_problems(migrations: Sequence[Migration], state: plan.DbState,
                      sums: dict[int, store.Checksum]) -> tuple[list[MigrateError], list[Migration]]:
    """(mismatches, applied files without a current checksum to adopt). Pure."""
    latest = state.latest_rows()
    mismatches: list[MigrateError] = []
    adopt: list[Migration] = []
    for m in migrations:
        row = latest.get(m.version)
        if row is None or not row.is_applied:
            continue
        rec = sums.get(m.version)
        if rec is None or rec.goose_row_id != row.id:
            adopt.append(m)  # applied by goose, or re-applied by goose after our record: trust on first use
        elif rec.sha256 != m.sha256:
            when = f" on {rec.recorded_at:%Y-%m-%d %H:%M:%S %Z}".rstrip() if rec.recorded_at else ""
            mismatches.append(MigrateError(
                reasons.CHECKSUM_MISMATCH,
                f"{m.file} (version {m.version}) changed after it was applied{when}: SHA-256 is now "
                f"{m.sha256[:12]}…, was {rec.sha256[:12]}…; restore the file, or accept the new content with "
                f"`schemagate migrate accept-checksum {m.version}`",
                file=m.file, version=m.version))
    return mismatches, adopt


def _refuse_mismatches(mismatches: list[MigrateError]) -> None:
    if mismatches:
        first = mismatches[0]
        if len(mismatches) > 1:
            first.message += f" (and {len(mismatches) - 1} more changed file(s): " + \
                ", ".join(e.file or "" for e in mismatches[1:]) + ")"
        first.details = [e.message for e in mismatches]
        raise first


MUTATING = {"up", "up-by-one", "up-to", "down", "down-to", "redo", "accept-checksum", "resolve-interrupted"}


def run(conn: psycopg.Connection, command: str, migrations: Sequence[Migration], opts: RunOptions,
        *, result: RunResult, target: int | None = None) -> None:
    """Execute `command`; progress and errors land in `result` (errors are also raised)."""
    t = opts.table
    if command in ("status", "version"):
        state = store.read_state(conn, t)
        _fill_state(result, migrations, state, before=True)
        if command == "status":
            latest = state.latest_rows()
            result.migrations = [
                {"version": m.version, "file": m.file,
                 "applied": m.version in latest and latest[m.version].is_applied,
                 "appliedAt": _iso(latest[m.version].tstamp)
                 if m.version in latest and latest[m.version].is_applied else None}
                for m in migrations]
        return
    if command == "validate":
        tracking = store.read_tracking(conn, t)
        state = tracking.state
        _fill_state(result, migrations, state, before=True)
        mismatches, _ = checksum_problems(migrations, state, tracking.checksums or {})
        _refuse_mismatches(mismatches)
        plan.plan_up(migrations, state, allow_missing=opts.allow_missing)  # raises on missing migrations
        return

    acquire_lock(conn, opts.lock_wait, opts.log)
    try:
        set_timeouts(conn, opts)
        tracking = store.read_tracking(conn, t)  # under the lock: nobody changes it before we do
        if not tracking.exists and (command.startswith("up") or command == "redo"):
            store.create_table(conn, t)
            opts.log(f"created tracking table {t.goose}")
            tracking = store.read_tracking(conn, t)
        state = tracking.state
        if state.rows and tracking.checksums is None:  # nothing to record where goose never ran (down)
            store.ensure_checksum_table(conn, t)
        _fill_state(result, migrations, state, before=True)
        if command == "accept-checksum":
            _accept_checksum(conn, migrations, state, opts, result=result, version=target)
            return
        if command == "resolve-interrupted":
            _resolve_interrupted(conn, t, state, tracking.checksums or {}, result=result, version=target)
            return
        if command.startswith("up") or command == "redo":
            _refuse_interrupted(state, tracking.checksums or {}, t)
            mismatches, adopt = checksum_problems(migrations, state, tracking.checksums or {})
            _refuse_mismatches(mismatches)
            latest = state.latest_rows()
            if adopt:
                with conn.pipeline():  # one round trip for all of them, not one per file
                    for m in adopt:
                        store.record_checksum(conn, t, m.version, latest[m.version].id, file=m.file, sha256=m.sha256)
                result.notes.append("recorded checksums of applied migrations: " + ", ".join(m.file for m in adopt))
        if command == "up":
            steps = plan.plan_up(migrations, state, allow_missing=opts.allow_missing)
        elif command == "up-by-one":
            steps = plan.plan_up(migrations, state, allow_missing=opts.allow_missing, by_one=True)
        elif command == "up-to":
            steps = plan.plan_up(migrations, state, target=target, allow_missing=opts.allow_missing)
        elif command == "down":
            steps = plan.plan_down(migrations, state)
        elif command == "down-to":
            steps = plan.plan_down(migrations, state, target=target)
        elif command == "redo":
            steps = plan.plan_redo(migrations, state)
        else:
            raise MigrateError(reasons.INVALID_ARGUMENTS, f"unknown command {command!r}")
        try:
            for step in steps:
                started = time.monotonic()
                result.in_progress = AppliedStep(step.migration.version, step.migration.file, step.direction, 0,
                                                 not step.migration.parsed.use_transaction)
                opts.on_progress(result)
                _run_step(conn, t, step)
                result.in_progress = None
                took = int((time.monotonic() - started) * 1000)
                result.applied.append(AppliedStep(step.migration.version, step.migration.file, step.direction, took))
                opts.on_progress(result)
                opts.log(f"OK   {step.migration.file} ({step.direction}, {took}ms)")
        except MigrateError as e:
            if steps:
                e.message += f"; stopped after {len(result.applied)} of {len(steps)} step(s)"
            raise
        finally:
            _fill_state(result, migrations, _safe_state(conn, t, state), before=False)
    finally:
        try:
            store.unlock(conn)
        except psycopg.Error:
            pass  # the session ends right after; closing it releases the lock anyway


def _safe_state(conn: psycopg.Connection, t: store.TableName, fallback: plan.DbState) -> plan.DbState | None:
    """The state after the run as the database holds it; None when this connection cannot say (the server
    restarted under it): what the run began with would be a guess, and versionAfter must never be one."""
    try:
        return store.read_state(conn, t)
    except psycopg.Error:
        return None


def _fill_state(result: RunResult, migrations: Sequence[Migration], state: plan.DbState | None, *,
                before: bool) -> None:
    if state is None:
        result.version_after = None
        return
    if before:
        result.version_before = state.current_version
    result.version_after = state.current_version
    result.pending = plan.pending(migrations, state)


def reread_state(url: str, migrations: Sequence[Migration], t: store.TableName, result: RunResult,
                 *, attempts: int = 5, pause: float = 1.0) -> None:
    """versionAfter from a new connection, after the run's own one was lost (a restart takes seconds)."""
    for attempt in range(attempts):
        try:
            with connection.open_session(url, connect_timeout=5) as conn:
                _fill_state(result, migrations, store.read_state(conn, t), before=False)
                return
        except (psycopg.Error, MigrateError):
            if attempt + 1 < attempts:
                time.sleep(pause)


def _interrupted_message(c: store.Checksum, t: store.TableName) -> str:
    when = f" (started {c.recorded_at:%Y-%m-%d %H:%M:%S %Z})".replace(" )", ")") if c.recorded_at else ""
    return (f"{c.file} (version {c.version}) is a NO TRANSACTION file whose run stopped part-way{when}: some of "
            f"its statements may have taken effect and {t.goose} has no row for it, so schemagate cannot know "
            f"what is applied and will not guess. Check the objects that file creates or changes; then either "
            f"finish it by hand and record it (`goose ... up-to {c.version}` after making it idempotent, or insert "
            f"its version row), or undo what of it ran; then run `schemagate migrate resolve-interrupted "
            f"{c.version}` and migrate again")


def _refuse_interrupted(state: plan.DbState, sums: dict[int, store.Checksum], t: store.TableName) -> None:
    marks = store.started_unrecorded(state, sums)
    if marks:
        c = marks[0]
        raise MigrateError(reasons.NO_TRANSACTION_INTERRUPTED, _interrupted_message(c, t) + "; nothing was run",
                           file=c.file, version=c.version)


def _resolve_interrupted(conn: psycopg.Connection, t: store.TableName, state: plan.DbState,
                         sums: dict[int, store.Checksum], *, result: RunResult, version: int | None) -> None:
    marks = {c.version: c for c in store.started_unrecorded(state, sums)}
    if version not in marks:
        listed = ", ".join(map(str, marks)) or "none"
        raise MigrateError(reasons.TARGET_NOT_FOUND, f"version {version} has no interrupted NO TRANSACTION run to "
                                                     f"resolve (interrupted: {listed})", version=version)
    store.clear_started(conn, t, version)
    result.notes.append(f"resolved the interrupted run of {marks[version].file}: the next run applies it again")


def _accept_checksum(conn: psycopg.Connection, migrations: Sequence[Migration], state: plan.DbState,
                     opts: RunOptions, *, result: RunResult, version: int | None) -> None:
    m = next((m for m in migrations if m.version == version), None)
    if m is None:
        raise MigrateError(reasons.TARGET_NOT_FOUND, f"version {version} is not a migration in the source",
                           version=version)
    row = state.latest_rows().get(m.version)
    if row is None or not row.is_applied:
        raise MigrateError(reasons.TARGET_NOT_FOUND, f"{m.file} (version {m.version}) is not applied; "
                           "there is no checksum to accept", file=m.file, version=m.version)
    store.record_checksum(conn, opts.table, m.version, row.id, file=m.file, sha256=m.sha256)
    result.notes.append(f"accepted SHA-256 {m.sha256[:12]}… for {m.file}")


def _iso(ts: Any) -> str | None:
    return ts.isoformat() if ts is not None else None
