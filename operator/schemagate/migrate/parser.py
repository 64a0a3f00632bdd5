"""goose's SQL migration grammar, ported line for line from pressly/goose v3.27.3 internal/sqlparser.

goose parses a file twice, once per direction, with one state machine; its quirks (what counts as an
annotation, where a plain statement ends, which comments are kept) decide how a file is split, so they
are reproduced exactly rather than improved. What we add: the line each statement starts on, and the line
of every error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from schemagate.migrate.envsub import DeclaredEnv, EnvsubError, from_process, interpolate

SQL_MIGRATIONS_URL = "see https://github.com/pressly/goose#sql-migrations"


class MigrationParseError(ValueError):
    """A file goose would refuse, with goose's own message plus the file and line it is about."""

    def __init__(self, file: str, line: int, message: str):
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Statement:
    sql: str
    line: int  # 1-based line of the file where the statement's first line is
    # That line as written in the file, before ENVSUB: what messages quote, since substituted values are
    # often secrets (a role's password). Empty when it is the same as the statement's first line.
    source_line: str = field(default="", compare=False)

    @property
    def first_line(self) -> str:
        return self.source_line.strip() or self.sql.split("\n", 1)[0]


@dataclass(frozen=True)
class ParsedMigration:
    up: tuple[Statement, ...]
    down: tuple[Statement, ...]
    use_transaction: bool
    envsub: bool  # some part of the file has `-- +goose ENVSUB ON`
    has_down: bool  # the file has a `-- +goose Down` section (goose runs an empty one as a no-op)
    # ENVSUB variables whose values were not known while parsing (the operator's plan: from a Secret or a
    # ConfigMap), read as "": the statements they make were not checked, the Job checks them.
    envsub_unchecked: tuple[str, ...] = ()


class _State(IntEnum):
    START = 0
    UP = 1
    BEGIN_UP = 2
    END_UP = 3
    DOWN = 4
    BEGIN_DOWN = 5
    END_DOWN = 6


_ANNOTATIONS = ("Up", "Down", "StatementBegin", "StatementEnd", "NO TRANSACTION", "ENVSUB ON", "ENVSUB OFF")


def go_quote(s: str) -> str:
    """Roughly Go's %q, so quoted fragments in messages read like goose's."""
    return json.dumps(s, ensure_ascii=False)


def _extract_annotation(line: str) -> str:
    if line.startswith((" ", "\t")):
        raise ValueError(f"{go_quote(line)} contains leading whitespace: invalid annotation")
    cmd = line.replace("--", "").replace("+goose", "", 1)
    if "+goose" in cmd:
        raise ValueError(f"{go_quote(cmd)} contains multiple '+goose' annotations: invalid annotation")
    cmd = cmd.strip()
    if not cmd:
        raise ValueError("empty annotation")
    for known in _ANNOTATIONS:
        if known.casefold() == cmd.casefold():
            return known
    raise ValueError(f"{go_quote(cmd)} not supported: invalid annotation")


def ends_with_semicolon(line: str) -> bool:
    """goose's rule: the last word before any word starting with `--` ends with `;`."""
    prev = ""
    for word in line.split():
        if word.startswith("--"):
            break
        prev = word
    return prev.endswith(";")


def split_lines(text: str) -> list[str]:
    """Lines as Go's bufio.ScanLines yields them (no final empty line, one trailing CR dropped)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _parse_direction(
    lines: list[str], filename: str, up: bool, env: Mapping[str, str]
) -> tuple[list[Statement], bool, bool, bool]:
    direction = "up" if up else "down"
    state = _State.START
    use_tx = True
    use_envsub = False
    any_envsub = False
    has_down = False
    stmts: list[Statement] = []
    buf: list[str] = []
    buf_line = 0
    raw_buf: list[str] = []  # buf's lines before ENVSUB
    begin_line = 0

    def fail(lineno: int, message: str) -> MigrationParseError:
        return MigrationParseError(filename, lineno, message)

    def unfinished(lineno: int) -> MigrationParseError:
        remaining = "\n".join(raw_buf).strip()  # as written: ENVSUB values are often secrets
        return fail(lineno, f"failed to parse migration: state {int(state)}, direction: {direction}: "
                            f"unexpected unfinished SQL query: {go_quote(remaining)}: missing semicolon?")

    def emit() -> None:
        nonlocal buf, buf_line, raw_buf
        text, raw = "\n".join(buf).strip(), "\n".join(raw_buf).strip()
        stmts.append(Statement(text, buf_line, raw.split("\n", 1)[0] if raw != text else ""))
        buf, raw_buf = [], []
        buf_line = 0

    for lineno, line in enumerate(lines, start=1):
        if state == _State.START and line.strip() == "":
            continue
        if line.strip().startswith("--") and "+goose" in line:
            try:
                cmd = _extract_annotation(line)
            except ValueError as e:
                raise fail(lineno, f"failed to parse annotation line {go_quote(line)}: {e}") from None
            if cmd == "Up":
                if state != _State.START:
                    raise fail(lineno, f"duplicate '-- +goose Up' annotations; stateMachine={int(state)}, "
                                       f"{SQL_MIGRATIONS_URL}")
                state = _State.UP
                continue
            if cmd == "Down":
                if state in (_State.BEGIN_UP, _State.BEGIN_DOWN):
                    # goose's words alone name the wrong annotation: the block that was never closed is the fault
                    raise fail(lineno, f"'-- +goose Down' inside the '-- +goose StatementBegin' block opened on "
                                       f"line {begin_line}: close that block with '-- +goose StatementEnd' first "
                                       f"(goose: must start with '-- +goose Up' annotation, "
                                       f"stateMachine={int(state)}, {SQL_MIGRATIONS_URL})")
                if state not in (_State.UP, _State.END_UP):
                    raise fail(lineno, f"'-- +goose Down' before any '-- +goose Up' annotation: a file starts with "
                                       f"'-- +goose Up' (goose: must start with '-- +goose Up' annotation, "
                                       f"stateMachine={int(state)}, {SQL_MIGRATIONS_URL})")
                if "\n".join(buf).strip():
                    raise unfinished(buf_line)
                state = _State.DOWN
                has_down = True
                continue
            if cmd == "StatementBegin":
                if state in (_State.UP, _State.END_UP):
                    state = _State.BEGIN_UP
                elif state in (_State.DOWN, _State.END_DOWN):
                    state = _State.BEGIN_DOWN
                else:
                    raise fail(lineno, "'-- +goose StatementBegin' must be defined after '-- +goose Up' or "
                                       f"'-- +goose Down' annotation, stateMachine={int(state)}, {SQL_MIGRATIONS_URL}")
                begin_line = lineno
                continue
            if cmd == "StatementEnd":
                if state == _State.BEGIN_UP:
                    state = _State.END_UP
                elif state == _State.BEGIN_DOWN:
                    state = _State.END_DOWN
                else:
                    raise fail(lineno, "'-- +goose StatementEnd' must be defined after '-- +goose StatementBegin', "
                                       f"{SQL_MIGRATIONS_URL}")
                # goose does not `continue` here: the line falls through to the code below.
            elif cmd == "NO TRANSACTION":
                use_tx = False
                continue
            elif cmd == "ENVSUB ON":
                use_envsub = any_envsub = True
                continue
            elif cmd == "ENVSUB OFF":
                use_envsub = False
                continue
        # Comments and empty lines before a statement are dropped; once a statement started, kept.
        if not buf and (line.strip().startswith("--") or line == ""):
            continue
        if state not in (_State.END_UP, _State.END_DOWN):
            raw = line
            if use_envsub:
                try:
                    line = interpolate(line, env)
                except EnvsubError as e:
                    raise fail(lineno, f"variable substitution failed: {e}:\n{line}") from None
            if not buf:
                buf_line = lineno
                raw_buf = []
            buf.append(line)
            raw_buf.append(raw)
        if state in (_State.UP, _State.BEGIN_UP, _State.END_UP):
            if not up:
                buf, buf_line = [], 0
                continue
        elif state in (_State.DOWN, _State.BEGIN_DOWN, _State.END_DOWN):
            if up:
                buf, buf_line = [], 0
                continue
        else:
            raise fail(lineno, f"SQL before the '-- +goose Up' annotation: every statement follows '-- +goose Up' "
                               f"(or '-- +goose Down') (goose: failed to parse migration: unexpected state "
                               f"{int(state)} on line {go_quote(raw)}, {SQL_MIGRATIONS_URL})")
        if state in (_State.UP, _State.DOWN):
            if ends_with_semicolon(line):
                emit()
        elif state == _State.END_UP:
            emit()
            state = _State.UP
        elif state == _State.END_DOWN:
            emit()
            state = _State.DOWN

    last = len(lines)
    if state == _State.START:
        raise fail(max(last, 1), f"no '-- +goose Up' annotation: the file has no migration in it (goose: failed "
                                 f"to parse migration: must start with '-- +goose Up' annotation, "
                                 f"{SQL_MIGRATIONS_URL})")
    if state in (_State.BEGIN_UP, _State.BEGIN_DOWN):
        raise fail(begin_line, "failed to parse migration: missing '-- +goose StatementEnd' annotation")
    if "\n".join(buf).strip():
        raise unfinished(buf_line)
    return stmts, use_tx, any_envsub, has_down


def parse(text: str, filename: str, env: Mapping[str, str] | None = None) -> ParsedMigration:
    """Split a goose SQL file into its up and down statements, or raise MigrationParseError.

    Both directions are parsed, as goose's Provider does, so a file that is broken in either direction is
    rejected before anything runs. `env` feeds ENVSUB (default: the process environment as the runner reads
    it, `envsub.from_process`: the declared names only once any are declared).
    """
    env = from_process(os.environ) if env is None else env
    if isinstance(env, DeclaredEnv):
        env = env.fresh()  # what this file used without a known value, not what an earlier file did
    lines = split_lines(text)
    up, use_tx, envsub, has_down = _parse_direction(lines, filename, True, env)
    down, _, _, _ = _parse_direction(lines, filename, False, env)
    unchecked = tuple(sorted(env.used_unknown)) if isinstance(env, DeclaredEnv) else ()
    return ParsedMigration(tuple(up), tuple(down), use_tx, envsub, has_down, unchecked)
