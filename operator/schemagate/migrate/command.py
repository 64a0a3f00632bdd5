"""`schemagate migrate [options] COMMAND`: goose's verbs on a goose database, plus checksums and a JSON result.

Exit status: 0 success, 1 the run failed (SQL error, lock, connection, checksum ...), 2 bad usage or
invalid input (bad files, unknown target). With --json the result document is printed on stdout; with
--result-file it is also written compactly within 4096 bytes (the Job's termination message).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from schemagate.api import reasons, shared
from schemagate.migrate import dburl, envsub, source
from schemagate.migrate.errors import MigrateError

if TYPE_CHECKING:
    from schemagate.migrate import runner

# psycopg (runner, store, result) is imported only by the code that talks to the database: `--help`,
# `create` and every bad-usage answer come back without paying for it (most of a Job's start-up).

COMMANDS = {
    "up": "apply every pending migration",
    "up-by-one": "apply the next pending migration",
    "up-to": "apply pending migrations up to VERSION",
    "down": "roll back the current version",
    "down-to": "roll back until the current version is at most VERSION (0 = everything)",
    "redo": "roll back the current version and apply it again",
    "status": "list every migration and whether it is applied (one query)",
    "version": "print the current version (one query)",
    "validate": "check files, checksums of applied files and out-of-order files without changing anything",
    "create": "create a new migration file NAME (timestamp version, or sequential with -s)",
    "accept-checksum": "record the current content of applied migration VERSION as its checksum",
    "resolve-interrupted": "after checking by hand: forget that NO TRANSACTION file VERSION was interrupted "
                           "part-way, so the next run applies it again",
    "plan": "print the statements up (default), up-to V, down-to V ... would run; changes nothing",
    "lint": "check every file against the writing rules (no database)",
}
NEEDS_VERSION = {"up-to", "down-to", "accept-checksum", "resolve-interrupted"}
DIGEST_COMMANDS = {"up", "up-to", "down-to"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "commands:\n" + "\n".join(f"  {k:<16} {v}" for k, v in COMMANDS.items())
    parser.add_argument("--dir", default=os.environ.get("GOOSE_MIGRATION_DIR", "."),
                        help="directory of goose .sql migrations (default: $GOOSE_MIGRATION_DIR or .)")
    parser.add_argument("--database-url", help="PostgreSQL URL or conninfo (default: $DATABASE_URL, then "
                        "libpq's PGHOST/PGUSER/PGPASSWORD/... variables)")
    parser.add_argument("--table", default=os.environ.get("GOOSE_TABLE"),
                        help="goose tracking table, optionally schema-qualified (default: goose_db_version)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="apply files older than the current version that were never applied (out of order)")
    parser.add_argument("--lock-timeout", help="PostgreSQL lock_timeout while migrating, e.g. 5s")
    parser.add_argument("--statement-timeout", help="PostgreSQL statement_timeout while migrating, e.g. 10min")
    parser.add_argument("--lock-wait", type=float, default=300.0, metavar="SECONDS",
                        help="how long to wait for another run's migration lock (default: 300)")
    parser.add_argument("--json", action="store_true", help="print the JSON result on stdout")
    parser.add_argument("--result-file", metavar="PATH",
                        help="also write the compact JSON result here (≤ 4096 bytes), e.g. /dev/termination-log")
    parser.add_argument("--backup-file", metavar="PATH",
                        help="pg_dump the database (custom format) to PATH before changing it; if the dump "
                             "fails nothing is applied")
    parser.add_argument("--expect-digest", metavar="HEX",
                        help="up/up-to/down-to: refuse (SourceChanged, nothing applied) unless the files this run "
                             "covers (every file up to the target, plus --expect-rollback) have this "
                             "files_digest; the operator passes the digest of the files it planned with")
    parser.add_argument("--expect-rollback", metavar="V,V,...", default="",
                        help="down-to with --expect-digest: the versions above the target the plan rolls back")
    parser.add_argument("--review", metavar="FILE",
                        help="plan: no database; FILE (- = stdin) is `kubectl get smig/NAME cm/... -o json`: print "
                             "the statements its status.plan.hash covers, recomputing the hash from the files")
    parser.add_argument("--envsub-allow", action="append", default=[], metavar="NAME",
                        help="ENVSUB may read NAME (repeatable; PREFIX* allows every name with that prefix); once "
                             "any name is declared (here or in $SCHEMAGATE_ENVSUB_NAMES, comma-separated) a file "
                             "referring to any other is refused. Without either, every variable but DATABASE_URL, "
                             "PG* and SCHEMAGATE_* (as before)")
    parser.add_argument("--exclude", metavar="RULE,...", help="lint: writing rules not to check")
    parser.add_argument("-s", "--sequential", action="store_true", help="create: sequential version (00001)")
    parser.add_argument("--lease-name", help="hold this Kubernetes Lease while migrating")
    parser.add_argument("--lease-namespace", help="namespace of --lease-name")
    parser.add_argument("--lease-holder", help="holder identity written into the Lease (default: hostname)")
    parser.add_argument("--lease-duration", type=int, default=30, metavar="SECONDS",
                        help="Lease duration; it is renewed while the run lasts (default: 30)")
    parser.add_argument("migrate_command", metavar="COMMAND", choices=sorted(COMMANDS),
                        help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("argument", nargs="?", metavar="VERSION|NAME",
                        help="the version for up-to/down-to/accept-checksum, the name for create, the verb for plan")
    parser.add_argument("plan_version", nargs="?", metavar="VERSION", help="plan up-to/down-to: the version")


@contextlib.contextmanager
def _lease(args: argparse.Namespace) -> Iterator[Callable[[str], None] | None]:
    if not args.lease_name:
        yield None
        return
    from schemagate import lease  # imported only when asked: it needs the Kubernetes client

    namespace = args.lease_namespace or _pod_namespace()
    try:
        cm = lease.held_lease(name=args.lease_name, namespace=namespace,
                              holder=args.lease_holder or os.environ.get("HOSTNAME") or "schemagate",
                              duration_seconds=args.lease_duration)
        note = cm.__enter__()
    except lease.LeaseUnavailable as e:
        raise MigrateError(reasons.LEASE_UNAVAILABLE, f"Lease {namespace}/{args.lease_name}: {e}") from None
    except Exception as e:  # noqa: BLE001  API down, 5xx, no kubeconfig: still a result the Job can report, not a traceback
        status = getattr(e, "status", None)
        why = (f"Kubernetes API answered {status} {getattr(e, 'reason', '') or ''}".rstrip() if status
               else f"{type(e).__name__}: {e}")
        raise MigrateError(reasons.LEASE_UNAVAILABLE,
                           f"Lease {namespace}/{args.lease_name}: cannot take it: {why}") from None
    exc: BaseException | None = None
    try:
        yield note
    except BaseException as e:
        exc = e
        raise
    finally:
        cm.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)


def _pod_namespace() -> str:
    try:
        return Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip() or "default"
    except OSError:
        return os.environ.get("POD_NAMESPACE", "default")


def _parse_version(args: argparse.Namespace) -> int | None:
    cmd = args.migrate_command
    if cmd in NEEDS_VERSION:
        if args.argument is None:
            raise MigrateError(reasons.INVALID_ARGUMENTS, f"{cmd} needs a VERSION argument")
        return source.version_argument(args.argument, cmd)
    if cmd == "create":
        if not args.argument:
            raise MigrateError(reasons.INVALID_ARGUMENTS, "create needs a NAME argument")
        return None
    if args.argument is not None:
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"{cmd} takes no argument (got {args.argument!r})")
    return None


def _expected_digest(args: argparse.Namespace, target: int | None) -> tuple[str, int | None, frozenset[int]] | None:
    """(digest, target, rollback versions) from --expect-digest/--expect-rollback, validated; None without."""
    digest = getattr(args, "expect_digest", None)
    rollback_arg = (getattr(args, "expect_rollback", "") or "").strip()
    if digest is None:
        if rollback_arg:
            raise MigrateError(reasons.INVALID_ARGUMENTS, "--expect-rollback needs --expect-digest")
        return None
    cmd = args.migrate_command
    if cmd not in DIGEST_COMMANDS:
        raise MigrateError(reasons.INVALID_ARGUMENTS,
                           f"--expect-digest: only {', '.join(sorted(DIGEST_COMMANDS))} check it, not {cmd}")
    digest = digest.strip().lower()
    if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"--expect-digest: {args.expect_digest!r} is not a "
                                                      "sha256 hex digest (64 hex digits)")
    rollback: set[int] = set()
    if rollback_arg:
        if cmd != "down-to":
            raise MigrateError(reasons.INVALID_ARGUMENTS, f"--expect-rollback: only down-to rolls back, not {cmd}")
        for part in rollback_arg.split(","):
            try:
                rollback.add(int(part))
            except ValueError:
                raise MigrateError(reasons.INVALID_ARGUMENTS,
                                   f"--expect-rollback: {part.strip()!r} is not a version number") from None
    return digest, target, frozenset(rollback)


def _check_digest(migrations: list[source.Migration], digest: str, target: int | None, rollback: frozenset[int],
                  directory: str) -> None:
    found = source.run_digest(((m.version, m.file, m.sha256) for m in migrations), target, rollback)
    if found == digest:
        return
    covered = "every file" if target is None else f"the files up to version {target}"
    if rollback:
        covered += f" and versions {', '.join(map(str, sorted(rollback, reverse=True)))} being rolled back"
    absent = sorted(rollback - {m.version for m in migrations})
    gone = f"; rolled-back version(s) {', '.join(map(str, absent))} have no file any more" if absent else ""
    raise MigrateError(
        reasons.SOURCE_CHANGED,
        f"the migration files in {directory} changed since this run was planned (and approved, if it needed "
        f"approval): {covered} should have digest {digest[:12]}…, the files here give {found[:12]}…{gone}; "
        "nothing was applied. A ConfigMap was edited after the plan: the operator plans again from the new "
        "content")


def execute(args: argparse.Namespace, log: Callable[[str], None]) -> runner.RunResult:
    """Everything but printing: validate input, take the lease, connect, run. Never raises MigrateError."""
    from schemagate.migrate import progress, runner, store

    url = dburl.resolve(args.database_url)
    cmd = args.migrate_command
    table_name = args.table or shared.DEFAULT_TABLE
    res = runner.RunResult(command=cmd, database=dburl.describe(url), table=table_name)
    hidden: list[str] = []  # ENVSUB values from Secrets: masked like the URL
    try:
        table = store.parse_table_name(table_name)
        target = _parse_version(args)
        runner.check_duration("--lock-timeout", args.lock_timeout)
        runner.check_duration("--statement-timeout", args.statement_timeout)
        if args.lock_wait < 0:
            raise MigrateError(reasons.INVALID_ARGUMENTS, "--lock-wait must not be negative")
        backup_file = getattr(args, "backup_file", None)
        if backup_file and cmd not in runner.MUTATING:
            raise MigrateError(reasons.INVALID_ARGUMENTS, f"--backup-file: {cmd} does not change the database")
        expected = _expected_digest(args, target)
        env = envsub.from_process(os.environ, getattr(args, "envsub_allow", None) or ())
        hidden = env.secret_values() if isinstance(env, envsub.DeclaredEnv) else []
        migrations = source.load_dir(args.dir, env)
        if not migrations:
            raise MigrateError(reasons.NO_MIGRATION_FILES, f"no migration files found in {args.dir}")
        if expected is not None:  # before the lease, the backup and the connection: nothing is touched
            _check_digest(migrations, *expected, args.dir)
        mutating = cmd in runner.MUTATING
        report = progress.Progress(getattr(args, "result_file", None) if mutating else None,
                                   getattr(args, "lease_holder", None))
        opts = runner.RunOptions(table=table, allow_missing=args.allow_missing, lock_timeout=args.lock_timeout,
                                 statement_timeout=args.statement_timeout, lock_wait=args.lock_wait, log=log,
                                 on_progress=report)
        lease_cm = _lease(args) if mutating else contextlib.nullcontext()
        with lease_cm as note:
            report.lease_note = note
            try:
                _connect_and_run(url, cmd, migrations, opts, res=res, target=target, backup_file=backup_file)
            except (KeyboardInterrupt, MigrateError) as e:
                _settle(res, e, url, hidden)
            if mutating and res.version_after is None and res.version_before is not None:
                runner.reread_state(url, migrations, table, res)  # the run's connection died with the server
            if mutating:
                report(res, final=True)  # onto the Lease before it is released
    except (KeyboardInterrupt, MigrateError) as e:
        _settle(res, e, url, hidden)
    return res


def _connect_and_run(url: str, cmd: str, migrations: list[source.Migration], opts: runner.RunOptions,
                     *, res: runner.RunResult, target: int | None, backup_file: str | None) -> None:
    from schemagate.migrate import runner

    conn = runner.connect(url)
    try:
        info = conn.info
        res.database = dburl.Target(info.host, int(info.port), info.dbname)
        if backup_file:  # under the Lease: nobody migrates between the dump and the run
            from schemagate.migrate import backup

            res.backup = backup.dump(url, backup_file).to_json()
        runner.run(conn, cmd, migrations, opts, result=res, target=target)
    except Exception as e:
        if isinstance(e, MigrateError):
            raise
        import psycopg
        if isinstance(e, psycopg.Error):
            raise MigrateError(reasons.DATABASE_ERROR, f"database error: {str(e).strip()}",
                               sqlstate=getattr(e, "sqlstate", None)) from e
        raise
    finally:
        conn.close()


def _settle(res: runner.RunResult, e: BaseException, url: str, hidden: list[str]) -> None:
    if isinstance(e, KeyboardInterrupt):
        res.error = interrupted(res)
        return
    assert isinstance(e, MigrateError)

    def redact(text: str) -> str:
        for value in hidden:
            text = text.replace(value, dburl.REDACTED)
        return dburl.redact(text, url)

    e.message = redact(e.message)
    e.details = [redact(d) for d in e.details]
    res.error = e


def interrupted(res: runner.RunResult) -> MigrateError:
    """The Interrupted error of a run stopped by SIGTERM/SIGINT, saying how far it got."""
    step = res.in_progress
    if step is None and res.applied:  # between two files, or after the last one: nothing was cut short
        last = res.applied[-1]
        return MigrateError(reasons.INTERRUPTED,
                            f"interrupted by a signal after {len(res.applied)} migration step(s) had completed "
                            f"(the last: {last.file}, {last.direction}); no migration was running")
    if step is None:
        return MigrateError(reasons.INTERRUPTED, "interrupted by a signal before any migration started running")
    if step.no_transaction:
        return MigrateError(reasons.NO_TRANSACTION_INTERRUPTED,
                            f"interrupted by a signal while running NO TRANSACTION file {step.file} "
                            f"({step.direction}): its running statement was cancelled, the statements before it "
                            "stay applied and no version row was written; the next run refuses until someone has "
                            "checked (schemagate migrate resolve-interrupted)", file=step.file, version=step.version)
    return MigrateError(reasons.INTERRUPTED,
                        f"interrupted by a signal while running {step.file} ({step.direction}); its statement was "
                        "cancelled and its transaction rolled back (NO TRANSACTION files keep statements that "
                        "had finished)", file=step.file, version=step.version)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (Job deadline, pod deletion) behaves like Ctrl-C: psycopg cancels the running statement,
    transactions roll back, the lock is released and the result is still written."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(res: runner.RunResult) -> int:
    if res.error is None:
        return 0
    return 2 if res.error.reason in reasons.INVALID_INPUT else 1


def _print_text(res: runner.RunResult) -> None:
    for note in res.notes:
        print(f"schemagate: {note}", file=sys.stderr)
    if res.error:
        print(f"schemagate migrate {res.command}: {res.error.reason}: {res.error.message}", file=sys.stderr)
        for d in res.error.details[1:]:
            print(f"  {d}", file=sys.stderr)
        return
    if res.command == "status":
        print("    Applied At                  Migration")
        print("    =======================================")
        for m in res.migrations or []:
            when = "Pending"
            if m["applied"]:
                ts = dt.datetime.fromisoformat(m["appliedAt"]) if m["appliedAt"] else None
                when = ts.strftime("%a %b ") + f"{ts.day:2d}" + ts.strftime(" %H:%M:%S %Y") if ts else "applied"
            print(f"    {when:<24} -- {m['file']}")
    elif res.command == "version":
        print(f"schemagate: version {res.version_after}")
    elif res.command == "validate":
        print(f"schemagate: migrations valid; database at version {res.version_after}, "
              f"{len(res.pending)} pending")
    elif res.command == "accept-checksum":
        pass
    elif res.applied:
        print(f"schemagate: successfully migrated database to version: {res.version_after}")
    else:
        print(f"schemagate: no migrations to run. current version: {res.version_after}")


def run(args: argparse.Namespace) -> int:
    if args.migrate_command in ("plan", "lint"):
        from schemagate.migrate import lint, preview  # neither runs anything: no lease, no lock, no result file

        if args.migrate_command == "lint":
            return lint.run(args)
        if getattr(args, "review", None):
            from schemagate.controller import review  # the operator's plan hash, recomputed

            return preview.run(args, reviewer=review.preview_from_kubectl)
        return preview.run(args)
    if getattr(args, "plan_version", None) is not None:
        print(f"schemagate migrate {args.migrate_command}: {reasons.INVALID_ARGUMENTS}: unexpected argument "
              f"{args.plan_version!r}", file=sys.stderr)
        return 2
    if args.migrate_command == "create":
        try:
            _parse_version(args)
            path = __import__("schemagate.migrate.create", fromlist=["create"]).create(
                args.dir, args.argument, args.sequential)
        except MigrateError as e:
            print(f"schemagate migrate create: {e.reason}: {e.message}", file=sys.stderr)
            return 2
        print(f"schemagate: created new file: {path}")
        return 0

    def log(msg: str) -> None:
        print(f"schemagate: {msg}", file=sys.stderr, flush=True)

    from schemagate.migrate import result

    with _sigterm_interrupts():
        res = execute(args, log)
    doc = result.to_json(res)
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        if res.error:
            print(f"schemagate migrate {res.command}: {res.error.reason}: {res.error.message}", file=sys.stderr)
    else:
        _print_text(res)
    if args.result_file:
        try:
            Path(args.result_file).write_text(result.compact(result.shrink(doc)), encoding="utf-8")
        except OSError as e:
            print(f"schemagate: cannot write --result-file {args.result_file}: {e.strerror}", file=sys.stderr)
            return 1
    return exit_code(res)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="schemagate migrate", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
