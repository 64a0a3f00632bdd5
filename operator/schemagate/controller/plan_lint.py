"""Lint of the files a plan would run: the writing rules (pure, migrate/rules.py) and squawk (one call).

The writing rules judge each planned file as written, both sections, exactly as `schemagate migrate lint`
does. squawk sees only the statements of the direction that will run, each placed on the line it has in
the file, so findings point at the file's own lines. Files goose runs in a transaction are linted with
`--assume-in-transaction` (squawk then judges CONCURRENTLY and friends correctly). Results are cached by
file checksum: the operator re-plans every resync and squawk's answer for the same text never changes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from schemagate.controller.decide import MigrationFile
from schemagate.migrate import rules

# One finding type for both linters; re-exported as the controller's name for it.
from schemagate.migrate.rules import Finding as Finding

# The Job sets lock_timeout itself (spec.lock.lockTimeout), so squawk's advice to do so is noise.
ALWAYS_EXCLUDED = ("require-lock-timeout",)
STATUS_LIMIT = 50
LEVELS = {"warning": 1, "error": 2}
TIMEOUT_SECONDS = 30


class LintUnavailable(Exception):
    """squawk could not be run or gave an answer we cannot read."""


def script(statements: Sequence[tuple[int, str]]) -> str:
    """The statements as one SQL text, each starting on its line of the file (blank lines in between)."""
    out: list[str] = []
    line = 1
    for start, sql in sorted(statements):
        if start > line:
            out.append("\n" * (start - line))
            line = start
        text = sql.rstrip()
        if not text.endswith(";"):
            text += ";"  # a StatementBegin/End block may end without one; squawk needs statements split
        out.append(text + "\n")
        line += text.count("\n") + 1
    return "".join(out)


def parse_report(text: str, file: str) -> list[Finding]:
    """squawk's `--reporter json` output (0-based lines) as findings on `file` (1-based lines)."""
    try:
        doc = json.loads(text or "[]")
    except ValueError:
        raise LintUnavailable(f"squawk printed something that is not JSON: {text.strip()[:200]!r}") from None
    if not isinstance(doc, list):
        raise LintUnavailable("squawk's JSON report is not a list")
    out = []
    for item in doc:
        level = str(item.get("level", "warning")).lower()
        line = item.get("line")
        out.append(Finding(file, line + 1 if isinstance(line, int) else None,
                           "error" if level == "error" else "warning",
                           str(item.get("rule_name") or "squawk"), str(item.get("message") or "").strip()))
    return out


def blocking(findings: Iterable[Finding], fail_on: str) -> list[Finding]:
    """The findings that stop the plan under spec.lint.failOn (none: never)."""
    floor = LEVELS.get(fail_on)
    return [] if floor is None else [f for f in findings if LEVELS[f.level] >= floor]


def statements_of(m: MigrationFile, direction: str) -> tuple[tuple[int, str], ...]:
    return m.down if direction == "down" else m.up


def squawk_binary() -> str | None:
    """squawk beside our interpreter (the squawk-cli wheel installs it there), else on PATH."""
    beside = Path(sys.executable).with_name("squawk")
    return str(beside) if beside.exists() else shutil.which("squawk")


_cache: dict[tuple[str, str, tuple[str, ...]], list[Finding]] = {}


def lint_file(m: MigrationFile, direction: str, exclude: Sequence[str]) -> list[Finding]:
    rules = tuple(sorted({*ALWAYS_EXCLUDED, *exclude}))
    key = (m.sha256, direction, rules)
    if key in _cache:
        return _cache[key]
    sql = script(statements_of(m, direction))
    findings: list[Finding] = []
    if sql.strip():
        binary = squawk_binary()
        if binary is None:
            raise LintUnavailable("squawk is not installed (pip install squawk-cli)")
        argv = [binary, "--reporter", "json", "--stdin-filepath", m.name, f"--exclude={','.join(rules)}"]
        if not m.no_transaction:
            argv.append("--assume-in-transaction")
        try:
            done = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise LintUnavailable(f"squawk could not run: {e}") from None
        if done.returncode not in (0, 1):
            raise LintUnavailable(f"squawk failed (exit code {done.returncode}): {done.stderr.strip()[:200]}")
        findings = parse_report(done.stdout, m.name)
    if len(_cache) > 1024:
        _cache.clear()
    _cache[key] = findings
    return findings


def lint(steps: Sequence[MigrationFile], direction: str, exclude: Sequence[str]) -> list[Finding]:
    """squawk's findings; the writing rules' names in `exclude` are theirs, not squawk's (it refuses them)."""
    _, squawk_exclude = rules.split_exclude(exclude)
    return [f for m in steps for f in lint_file(m, direction, squawk_exclude)]


def writing_rules(steps: Sequence[MigrationFile], exclude: Sequence[str]) -> list[Finding]:
    """The writing rules' findings on the planned files (pure: never unavailable, unlike squawk)."""
    ours, _ = rules.split_exclude(exclude)
    return [f for m in steps for f in rules.check(m.name, m.has_down, m.up, m.down, file_notes=m.notes, exclude=ours)]
