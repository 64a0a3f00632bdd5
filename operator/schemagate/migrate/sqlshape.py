"""What one SQL statement does to the schema, read from its words alone (pure; no SQL parser, no database).

Enough of PostgreSQL's lexical rules to tell statements apart — comments, quoted strings, quoted
identifiers and dollar-quoted bodies are opaque — and then only the statement's top level is read. So
a `DO $$ ... $$` block or a function body is never looked into: what runs inside it is the guard's
business (a guarded `ALTER TABLE ... ADD COLUMN` is the idempotent way to write one).

Used by the writing rules (rules.py) and by `schemagate verify` (the tables the Up sections create).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>(?:[EeBbXxNn]|[Uu]&)?'(?:[^']|'')*(?:'|\Z))
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)?\$.*?(?:\$(?P=tag)\$|\Z))
  | (?P<quoted>"(?:[^"]|"")*(?:"|\Z))
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<number>[0-9][0-9.]*)
  | (?P<punct>.)
""", re.S | re.X)

Kind = Literal["schema", "data", "other"]


@dataclass(frozen=True)
class Token:
    text: str  # keywords upper-cased, identifiers as PostgreSQL folds them (unquoted: lower case)
    depth: int  # parenthesis depth
    word: bool  # a keyword or unquoted identifier (quoted identifiers are never keywords)


@dataclass(frozen=True)
class Shape:
    """What a statement is, as far as the writing rules and verify care."""

    kind: Kind  # schema (CREATE/ALTER/DROP), data (INSERT/UPDATE/DELETE/MERGE/TRUNCATE/COPY), other
    verb: str = ""  # e.g. "CREATE TABLE", "UPDATE": how messages name the statement
    not_idempotent: tuple[str, ...] = ()  # why it fails when run on a database that already has its effect
    creates: tuple[str, ...] = ()  # tables it creates (CREATE TABLE, or the new name of RENAME TO)
    drops: tuple[str, ...] = ()  # tables it drops (or the old name of RENAME TO)
    writes: tuple[str, ...] = field(default=())  # tables whose rows it changes


def tokens(sql: str) -> list[Token]:
    out: list[Token] = []
    depth = 0
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        text = m.group()
        if kind in ("space", "comment"):
            continue
        if kind == "punct":
            if text == "(":
                out.append(Token(text, depth, False))
                depth += 1
                continue
            if text == ")":
                depth = max(depth - 1, 0)
        if kind == "word":
            out.append(Token(text.upper(), depth, True))
        elif kind == "quoted":
            out.append(Token(text[1:-1].replace('""', '"') if text.endswith('"') and len(text) > 1 else text[1:],
                             depth, False))
        else:
            out.append(Token(text if kind == "punct" else f"<{kind}>", depth, False))
    return out


def _name(top: list[Token], i: int) -> tuple[str | None, int]:
    """The (possibly schema-qualified) name starting at top[i] → (its last part, index after it)."""
    if i >= len(top) or (top[i].word is False and top[i].text in ("(", ",", ";", ".", "<string>", "<dollar>")):
        return None, i
    parts = [top[i].text.lower() if top[i].word else top[i].text]
    i += 1
    while i + 1 < len(top) and top[i].text == "." and not top[i].word:
        nxt = top[i + 1]
        parts.append(nxt.text.lower() if nxt.word else nxt.text)
        i += 2
    return parts[-1], i


def _is(top: list[Token], i: int, *words: str) -> bool:
    return all(i + k < len(top) and top[i + k].word and top[i + k].text == w for k, w in enumerate(words))


def _split_actions(top: list[Token]) -> list[list[Token]]:
    actions: list[list[Token]] = [[]]
    for t in top:
        if t.text == "," and not t.word and t.depth == 0:
            actions.append([])
        else:
            actions[-1].append(t)
    return [a for a in actions if a]


# CREATE <kind> that PostgreSQL lets say IF NOT EXISTS (with the words that may sit between CREATE and it)
_CREATE_MODIFIERS = {"OR", "REPLACE", "UNIQUE", "TEMP", "TEMPORARY", "UNLOGGED", "GLOBAL", "LOCAL"}
_IF_NOT_EXISTS = {"TABLE", "INDEX", "SEQUENCE", "SCHEMA", "EXTENSION", "MATERIALIZED"}
_CONSTRAINT_WORDS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE"}
_DATA_VERBS = {"INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "COPY"}


def shape(sql: str) -> Shape:
    top = [t for t in tokens(sql) if t.depth == 0]
    if not top or not top[0].word:
        return Shape("other")
    first = top[0].text
    if first == "CREATE":
        return _create(top)
    if first == "DROP":
        return _drop(top)
    if first == "ALTER":
        return _alter(top)
    if first == "WITH":  # WITH ... INSERT/UPDATE/DELETE/MERGE: the verb after the CTEs (at the top level)
        at = next((k for k, t in enumerate(top) if k and t.word and t.text in _DATA_VERBS - {"COPY", "TRUNCATE"}), None)
        return _data(top[at:]) if at is not None else Shape("other")
    if first in _DATA_VERBS:
        return _data(top)
    return Shape("other")


def _create(top: list[Token]) -> Shape:
    i = 1
    while i < len(top) and top[i].word and top[i].text in _CREATE_MODIFIERS:
        i += 1
    if i >= len(top) or not top[i].word:
        return Shape("schema", "CREATE")
    obj = top[i].text
    verb = "CREATE " + ("MATERIALIZED VIEW" if obj == "MATERIALIZED" else obj)
    i += 2 if obj == "MATERIALIZED" else 1
    if obj not in _IF_NOT_EXISTS:
        return Shape("schema", verb)
    if obj == "INDEX" and _is(top, i, "CONCURRENTLY"):
        i += 1
    guarded = _is(top, i, "IF", "NOT", "EXISTS")
    why = () if guarded else (f"{verb} without IF NOT EXISTS",)
    name, _ = _name(top, i + 3 if guarded else i)
    return Shape("schema", verb, why, creates=(name,) if obj == "TABLE" and name else ())


def _drop(top: list[Token]) -> Shape:
    if _is(top, 1, "OWNED"):  # DROP OWNED BY has no IF EXISTS
        return Shape("schema", "DROP OWNED")
    # The object kind takes one to three words (TABLE, INDEX CONCURRENTLY, FOREIGN DATA WRAPPER, ...).
    at = next((k for k in range(1, min(len(top), 6)) if _is(top, k, "IF", "EXISTS")), None)
    kind_words = [t.text for t in top[1:at if at is not None else 2] if t.word]
    verb = " ".join(["DROP", *kind_words]) if kind_words else "DROP"
    why = () if at is not None else (f"{verb} without IF EXISTS",)
    drops: tuple[str, ...] = ()
    if _is(top, 1, "TABLE"):
        names = []
        for action in _split_actions(top[(at + 2) if at is not None else 2:]):
            name, _ = _name(action, 0)
            if name and not (action[0].word and action[0].text in ("CASCADE", "RESTRICT")):
                names.append(name)
        drops = tuple(names)
    return Shape("schema", verb, why, drops=drops)


def _alter(top: list[Token]) -> Shape:
    if not _is(top, 1, "TABLE"):
        return Shape("schema", "ALTER " + (top[1].text if len(top) > 1 and top[1].word else ""))
    i = 2
    if _is(top, i, "IF", "EXISTS"):
        i += 2
    if _is(top, i, "ONLY"):
        i += 1
    table, i = _name(top, i)
    if i < len(top) and top[i].text == "*":
        i += 1
    why: list[str] = []
    creates: tuple[str, ...] = ()
    drops: tuple[str, ...] = ()
    for action in _split_actions(top[i:]):
        if _is(action, 0, "ADD"):
            if len(action) > 1 and action[1].word and action[1].text in _CONSTRAINT_WORDS:
                why.append("ALTER TABLE ... ADD CONSTRAINT outside a guard (PostgreSQL has no IF NOT EXISTS for "
                           "constraints: add it in a DO block that checks pg_constraint first)")
                continue
            k = 2 if _is(action, 1, "COLUMN") else 1
            if not _is(action, k, "IF", "NOT", "EXISTS"):
                why.append("ALTER TABLE ... ADD COLUMN without IF NOT EXISTS")
        elif _is(action, 0, "DROP"):
            if _is(action, 1, "CONSTRAINT") or _is(action, 1, "COLUMN"):
                k, what = 2, action[1].text
            else:
                k, what = 1, "COLUMN"
            if not _is(action, k, "IF", "EXISTS"):
                why.append(f"ALTER TABLE ... DROP {what} without IF EXISTS")
        elif _is(action, 0, "RENAME", "TO") and table:
            new, _ = _name(action, 2)
            if new:
                creates, drops = (new,), (table,)
    return Shape("schema", "ALTER TABLE", tuple(dict.fromkeys(why)), creates=creates, drops=drops)


def _data(top: list[Token]) -> Shape:
    verb = top[0].text
    i = 1
    if ((verb in ("INSERT", "MERGE") and _is(top, i, "INTO")) or (verb == "DELETE" and _is(top, i, "FROM"))
            or (verb == "TRUNCATE" and _is(top, i, "TABLE"))):
        i += 1
    if _is(top, i, "ONLY"):
        i += 1
    if verb == "COPY" and not any(t.word and t.text == "FROM" for t in top):
        return Shape("other", "COPY")  # COPY ... TO reads
    names = []
    for action in (_split_actions(top[i:]) if verb == "TRUNCATE" else [top[i:]]):
        name, _ = _name(action, 0)
        if name:
            names.append(name)
    return Shape("data", verb, writes=tuple(names))
