"""`schemagate migrate plan [VERB [VERSION]]`: the statements a run would execute, without running them.

A dry run: the tracking table and our checksum table are read (one query each, absent tables read as
empty), nothing is written or created, no lock is taken, no Lease. VERB is up (default), up-by-one,
up-to V, down, down-to V or redo; the steps are planned by the same pure functions the run uses
(plan.py), so what is printed is what that command would run now — unless the database or the files
change in between, which is what the files digest (the value `--expect-digest` pins a run to) is for.

With `--review FILE` (`-` = stdin) no database is read: FILE is `kubectl get -o json` of a
SchemaMigration awaiting approval (and, in the same List, its ConfigMaps); see controller/review.py.

ENVSUB files are shown as written (`${VAR}`): the values come from the Job's environment at run time and
are often secrets.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemagate.api import reasons, shared
from schemagate.migrate import plan, source
from schemagate.migrate.errors import MigrateError

VERBS = ("up", "up-by-one", "up-to", "down", "down-to", "redo")
NEEDS_VERSION = {"up-to", "down-to"}


class AsWritten(Mapping[str, str]):
    """An ENVSUB environment in which every variable is its own `${NAME}`: statements as the file has them."""

    def __getitem__(self, key: str) -> str:
        return "${" + key + "}"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass(frozen=True)
class Preview:
    verb: str
    steps: tuple[plan.Step, ...]
    version_before: int
    version_after: int
    files_digest: str | None  # what --expect-digest would be for this run (None: the verb takes none)
    plan_hash: str | None = None  # --review: status.plan.hash, recomputed from the files and found equal
    title: str = ""  # what was planned against (database name, or smig/NAME)


def parse_verb(argument: str | None, version: str | None) -> tuple[str, int | None]:
    verb = argument or "up"
    if verb not in VERBS:
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"plan: {verb!r} is not one of {', '.join(VERBS)}")
    if verb not in NEEDS_VERSION:
        if version is not None:
            raise MigrateError(reasons.INVALID_ARGUMENTS, f"plan {verb} takes no VERSION (got {version!r})")
        return verb, None
    if version is None:
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"plan {verb} needs a VERSION")
    return verb, source.version_argument(version, f"plan {verb}")


def plan_steps(migrations: Sequence[source.Migration], state: plan.DbState, verb: str, target: int | None, *,
               allow_missing: bool = False) -> list[plan.Step]:
    """Pure: the steps `verb` would run, as the runner plans them."""
    if verb == "up":
        return plan.plan_up(migrations, state, allow_missing=allow_missing)
    if verb == "up-by-one":
        return plan.plan_up(migrations, state, allow_missing=allow_missing, by_one=True)
    if verb == "up-to":
        return plan.plan_up(migrations, state, target=target, allow_missing=allow_missing)
    if verb == "down":
        return plan.plan_down(migrations, state)
    if verb == "down-to":
        return plan.plan_down(migrations, state, target=target)
    return plan.plan_redo(migrations, state)


def version_after(state: plan.DbState, steps: Sequence[plan.Step]) -> int:
    for step in steps:
        v = step.migration.version
        state = state.with_applied(v) if step.direction == "up" else state.without(v)
    return state.current_version


def digest(migrations: Sequence[source.Migration], verb: str, target: int | None,
           steps: Sequence[plan.Step]) -> str | None:
    """The digest `--expect-digest` checks for this run (the operator's, for the plans it makes)."""
    if verb not in ("up", "up-to", "down-to"):
        return None
    rollback = [s.migration.version for s in steps] if verb == "down-to" else []
    return source.run_digest(((m.version, m.file, m.sha256) for m in migrations), target, rollback)


def preview(migrations: Sequence[source.Migration], state: plan.DbState, verb: str, target: int | None,
            *, allow_missing: bool = False, title: str = "") -> Preview:
    steps = plan_steps(migrations, state, verb, target, allow_missing=allow_missing)
    return Preview(verb, tuple(steps), state.current_version, version_after(state, steps),
                   digest(migrations, verb, target, steps), title=title)


def _statements(step: plan.Step) -> Sequence[Any]:
    p = step.migration.parsed
    return [s for s in (p.up if step.direction == "up" else p.down) if s.sql]


def to_json(pv: Preview) -> dict[str, Any]:
    return {
        "schemagate": 1, "command": "plan", "ok": True, "verb": pv.verb, "planned": pv.title or None,
        "versionBefore": pv.version_before, "versionAfter": pv.version_after, "filesDigest": pv.files_digest,
        "planHash": pv.plan_hash,
        "steps": [{"version": s.migration.version, "file": s.migration.file, "sha256": s.migration.sha256,
                   "direction": s.direction, "noTransaction": not s.migration.parsed.use_transaction,
                   "envsub": s.migration.parsed.envsub,
                   "statements": [{"line": st.line, "sql": st.sql} for st in _statements(s)]}
                  for s in pv.steps],
        "error": None,
    }


def to_text(pv: Preview) -> str:
    """SQL with comment headers: one per file (version, direction, transaction), one line per statement."""
    count = sum(len(_statements(s)) for s in pv.steps)
    out = [f"-- schemagate migrate plan {pv.verb}{f' ({pv.title})' if pv.title else ''}: version "
           f"{pv.version_before} → {pv.version_after}, {len(pv.steps)} migration(s), {count} statement(s); "
           "dry run, nothing was changed"]
    if pv.plan_hash:
        out.append(f"-- plan hash {pv.plan_hash}: recomputed from these files, equal to status.plan.hash")
    if pv.files_digest:
        out.append(f"-- files digest {pv.files_digest} (what --expect-digest pins the run to)")
    for s in pv.steps:
        m = s.migration
        how = ("NO TRANSACTION: each statement commits on its own" if not m.parsed.use_transaction
               else "in one transaction with its version row")
        envsub = ("; ENVSUB: ${VAR} is replaced from the variables the run declares (spec.job.env, --envsub-allow)"
                  if m.parsed.envsub else "")
        out += ["", f"-- ==== version {m.version} {s.direction.upper()}: {m.file} (sha256 {m.sha256[:12]}…), "
                    f"{how}{envsub}"]
        for st in _statements(s):
            out += [f"-- {m.file}:{st.line}", st.sql]
    if not pv.steps:
        out += ["", "-- nothing to run"]
    return "\n".join(out) + "\n"


def _from_database(args: argparse.Namespace, migrations: list[source.Migration], verb: str,
                   target: int | None) -> Preview:
    from schemagate.migrate import dburl, runner, store  # psycopg only when a database is read

    url = dburl.resolve(args.database_url)
    table = store.parse_table_name(args.table or shared.DEFAULT_TABLE)
    try:
        conn = runner.connect(url)
        try:
            state = store.read_state(conn, table)
            mismatches, _ = runner.checksum_problems(migrations, state, store.read_checksums(conn, table))
            name = conn.info.dbname
        finally:
            conn.close()
    except MigrateError as e:
        e.message = dburl.redact(e.message, url)
        raise
    except Exception as e:  # noqa: BLE001  psycopg errors (permissions, ...): said without the URL
        raise MigrateError(reasons.DATABASE_ERROR, f"database error: {dburl.redact(str(e).strip(), url)}") from None
    if mismatches and (verb.startswith("up") or verb == "redo"):
        raise mismatches[0]  # the run would refuse before its first statement: say so, plan nothing
    return preview(migrations, state, verb, target, allow_missing=args.allow_missing, title=f"database {name!r}")


# `--review`: the operator's plan, recomputed from `kubectl get -o json` (controller/review.py; the command
# module passes it in, since the runner's modules do not import the operator's).
Reviewer = Callable[[str, str, Mapping[str, str]], Preview]


def run(args: argparse.Namespace, *, reviewer: Reviewer | None = None) -> int:
    try:
        if args.review:
            if args.argument is not None:
                raise MigrateError(reasons.INVALID_ARGUMENTS, f"plan --review takes no verb (got {args.argument!r}):"
                                                              " status.plan says what runs")
            assert reviewer is not None, "migrate plan --review needs the operator's review (migrate/command.py)"
            pv = reviewer(_read_review_input(args.review), args.dir, AsWritten())
        else:
            verb, target = parse_verb(args.argument, args.plan_version)
            migrations = source.load_files(source.read_dir(args.dir), AsWritten())
            if not migrations:
                raise MigrateError(reasons.NO_MIGRATION_FILES, f"no migration files found in {args.dir}")
            pv = _from_database(args, migrations, verb, target)
    except MigrateError as e:
        if args.json:
            print(json.dumps({"schemagate": 1, "command": "plan", "ok": False, "error": e.to_json()}, indent=2,
                             ensure_ascii=False))
        print(f"schemagate migrate plan: {e.reason}: {e.message}", file=sys.stderr)
        for d in e.details[1:]:
            print(f"  {d}", file=sys.stderr)
        return 2 if e.reason in reasons.INVALID_INPUT else 1
    if args.json:
        print(json.dumps(to_json(pv), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(to_text(pv))
    return 0


def _read_review_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"--review: cannot read {path}: {e.strerror}") from None
