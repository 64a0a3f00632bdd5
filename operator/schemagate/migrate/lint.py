"""`schemagate migrate lint`: the writing rules over every file of --dir (no database), for people and CI.

The same checks, on the same parsed files, as the operator puts in status.plan.lint for the files a plan
runs (squawk's findings come from squawk itself: `squawk FILE`). Exit 0: no finding; 1: findings; 2: a
file goose would refuse, or bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from schemagate.api import reasons
from schemagate.migrate import rules, source
from schemagate.migrate.errors import MigrateError


def findings(migrations: Sequence[source.Migration], exclude: Sequence[str] = ()) -> list[rules.Finding]:
    return [f for m in migrations for f in rules.check(
        m.file, m.parsed.has_down, [(s.line, s.sql) for s in m.parsed.up], [(s.line, s.sql) for s in m.parsed.down],
        file_notes=m.notes, exclude=exclude)]


def parse_exclude(text: str | None) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in rules.RULES]
    if unknown:
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"--exclude: unknown rule {unknown[0]!r} "
                                                      f"(rules: {', '.join(rules.RULES)})")
    return names


def to_json(files: int, found: Sequence[rules.Finding], error: MigrateError | None = None) -> dict[str, Any]:
    return {"schemagate": 1, "command": "lint", "ok": error is None and not found, "files": files,
            "findings": [f.to_status() for f in found], "error": error.to_json() if error else None}


def run(args: argparse.Namespace) -> int:
    try:
        extra = args.argument if args.argument is not None else getattr(args, "plan_version", None)
        if extra is not None:
            raise MigrateError(reasons.INVALID_ARGUMENTS, f"lint takes no argument (got {extra!r})")
        exclude = parse_exclude(getattr(args, "exclude", None))
        # ENVSUB values are the Job's business: lint the text as written, as the operator does
        migrations = source.load_files(source.read_dir(args.dir), env={})
    except MigrateError as e:
        if args.json:
            print(json.dumps(to_json(0, [], e), indent=2, ensure_ascii=False))
        print(f"schemagate migrate lint: {e.reason}: {e.message}", file=sys.stderr)
        for d in e.details[1:]:
            print(f"  {d}", file=sys.stderr)
        return 2
    found = findings(migrations, exclude)
    if args.json:
        print(json.dumps(to_json(len(migrations), found), indent=2, ensure_ascii=False))
    else:
        for f in found:
            print(f)
        if found:
            print(f"schemagate: {len(found)} finding(s) in {len({f.file for f in found})} of {len(migrations)} "
                  f"file(s); turn a rule off for one file with `-- {rules.ANNOTATION} {rules.NOLINT} RULE`",
                  file=sys.stderr)
        else:
            print(f"schemagate: {len(migrations)} file(s) follow the writing rules")
    return 1 if found else 0
