"""The writing rules every migration follows (migrations/README.md), as checks: pure, over parsed files.

- require-down: the file has a `-- +goose Down` section (goose runs a missing one as a no-op, so the
  rollback would silently do nothing);
- require-idempotent-ddl: CREATE TABLE/INDEX/SEQUENCE/SCHEMA/EXTENSION/MATERIALIZED VIEW say IF NOT EXISTS,
  DROP says IF EXISTS, ALTER TABLE ... ADD/DROP COLUMN say IF NOT EXISTS / IF EXISTS, ADD CONSTRAINT sits in
  a guard (a DO block is never looked into: it is the guard);
- separate-schema-and-data: a section that changes the schema does not also change rows of tables it did
  not create (seeding a table created in the same section is fine; a backfill is a migration of its own).

A file turns rules off for itself with a goose-style annotation line, anywhere in the file:
`-- +schemagate NoLint require-down` (several rules: separated by spaces or commas). goose reads it as a
comment. A SchemaMigration turns them off with spec.lint.exclude.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from schemagate.migrate import sqlshape

REQUIRE_DOWN = "require-down"
REQUIRE_IDEMPOTENT_DDL = "require-idempotent-ddl"
SEPARATE_SCHEMA_AND_DATA = "separate-schema-and-data"
INVALID_ANNOTATION = "invalid-annotation"  # a `+schemagate` line we cannot read: never silently ignored
RULES = {
    REQUIRE_DOWN: "every migration has a `-- +goose Down` section that undoes its Up",
    REQUIRE_IDEMPOTENT_DDL: "DDL succeeds on a database that already has part of it (IF [NOT] EXISTS, guards)",
    SEPARATE_SCHEMA_AND_DATA: "schema changes and changes to existing rows go in separate migrations",
}
ANNOTATION = "+schemagate"
NOLINT = "NoLint"

_ANNOTATION_LINE = re.compile(r"^--\s*\+schemagate\b(.*)$")


@dataclass(frozen=True)
class Finding:
    """One lint finding on a migration file: a writing rule's or squawk's."""

    file: str
    line: int | None
    level: Literal["warning", "error"]
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.level} {self.rule}: {self.message}"

    def to_status(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "level": self.level, "rule": self.rule,
                "message": self.message[:300]}


@dataclass(frozen=True)
class FileNotes:
    """What the rules need from a file's text that the goose grammar drops (it keeps no comments)."""

    up_line: int = 1  # line of `-- +goose Up`: where a missing Down is reported
    nolint: tuple[tuple[int, str], ...] = ()  # (line, rule) of each rule a NoLint annotation names
    invalid: tuple[tuple[int, str], ...] = ()  # (line, why) of `+schemagate` lines that mean nothing


def notes(text: str) -> FileNotes:
    up_line = 0
    nolint: list[tuple[int, str]] = []
    invalid: list[tuple[int, str]] = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not up_line and line.startswith("--") and "+goose" in line and line.replace("--", "", 1).replace(
                "+goose", "", 1).strip().casefold() == "up":
            up_line = n
        m = _ANNOTATION_LINE.match(line.rstrip("\r"))
        if not m:
            continue
        words = m.group(1).replace(",", " ").split()
        if not words or words[0] != NOLINT:
            got = f"{words[0]!r}" if words else "nothing"
            invalid.append((n, f"`-- {ANNOTATION}` must be followed by {NOLINT} and rule names, not {got}"))
            continue
        if len(words) == 1:
            invalid.append((n, f"`-- {ANNOTATION} {NOLINT}` names no rule (rules: {', '.join(RULES)})"))
        for rule in words[1:]:
            if rule in RULES:
                nolint.append((n, rule))
            else:
                invalid.append((n, f"`-- {ANNOTATION} {NOLINT}`: unknown rule {rule!r} (rules: {', '.join(RULES)})"))
    return FileNotes(up_line or 1, tuple(nolint), tuple(invalid))


def split_exclude(names: Iterable[str]) -> tuple[frozenset[str], list[str]]:
    """spec.lint.exclude → (writing rules to skip, the rest: squawk's)."""
    names = list(names)
    return frozenset(n for n in names if n in RULES), [n for n in names if n not in RULES]


def check(file: str, has_down: bool, up: Sequence[tuple[int, str]], down: Sequence[tuple[int, str]],
          *, file_notes: FileNotes = FileNotes(), exclude: Iterable[str] = ()) -> list[Finding]:
    """The writing rules' findings on one file, in line order. `up`/`down`: (line, sql) per statement."""
    off = {*exclude, *(rule for _, rule in file_notes.nolint)}
    found = [Finding(file, line, "error", INVALID_ANNOTATION, why) for line, why in file_notes.invalid]
    if REQUIRE_DOWN not in off and not has_down:
        found.append(Finding(file, file_notes.up_line, "warning", REQUIRE_DOWN,
                             "no `-- +goose Down` section: the migration cannot be rolled back (goose runs the "
                             "missing Down as a no-op, schemagate refuses the rollback)"))
    for section, statements in (("Up", up), ("Down", down)):
        shapes = [(line, sqlshape.shape(sql)) for line, sql in statements]
        if REQUIRE_IDEMPOTENT_DDL not in off:
            for line, s in shapes:
                for why in s.not_idempotent:
                    found.append(Finding(file, line, "warning", REQUIRE_IDEMPOTENT_DDL,
                                         f"{why}: it fails on a database that already has this change "
                                         f"(a retried or partly applied run)"))
        if SEPARATE_SCHEMA_AND_DATA not in off:
            mixed = _mixed(section, shapes)
            if mixed is not None:
                found.append(Finding(file, mixed[0], "warning", SEPARATE_SCHEMA_AND_DATA, mixed[1]))
    return sorted(found, key=lambda f: (f.line or 0, f.rule))


def _mixed(section: str, shapes: list[tuple[int, sqlshape.Shape]]) -> tuple[int, str] | None:
    """(line, why) of the first change to existing rows in a section that also changes the schema."""
    schema = [(line, s) for line, s in shapes if s.kind == "schema"]
    if not schema:
        return None
    created = {t for _, s in schema for t in s.creates}
    for line, s in shapes:
        existing = [t for t in s.writes if t not in created]
        if s.kind == "data" and existing:
            ddl_line, ddl = schema[0]
            return line, (f"{s.verb} of existing table {existing[0]} in the {section} section, which also changes "
                          f"the schema ({ddl.verb}, line {ddl_line}): put data changes in a migration of their own, so "
                          f"each can be reviewed, timed and rolled back alone")
    return None
