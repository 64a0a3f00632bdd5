"""Is a goose statement exactly one SQL command? Decides whether it may be pipelined.

goose sends every statement with the simple query protocol, where one string may hold several commands
(`SELECT 1; SELECT 2;` on one line, or a StatementBegin/End block with two). Pipelining needs the
extended protocol, which refuses more than one. So a statement is pipelined only when this scanner is
sure it is one command; whatever it cannot be sure of (unterminated quotes, backslashes whose meaning
depends on standard_conforming_strings, COPY) runs alone with the simple protocol, as goose runs it.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_FIRST_WORD = re.compile(r"\s*([A-Za-z]+)")
_SPECIAL = re.compile(r"[;'\"$]|--|/\*")  # where a token other than plain code may start


class _Unsure(Exception):
    pass


def one_statement(text: str) -> bool:
    """True only if `text` is certainly a single, non-empty SQL command that is not COPY."""
    try:
        tokens = list(_tokens(text))
    except _Unsure:
        return False
    code = [(kind, s, e) for kind, s, e in tokens if kind != "comment"]
    semicolons = [i for i, (kind, _, _) in enumerate(code) if kind == ";"]
    if semicolons and any(text[s:e].strip() for _, s, e in code[semicolons[0] + 1:]):
        return False  # something other than whitespace and comments after the first `;`
    body = "".join(text[s:e] for _, s, e in (code[:semicolons[0]] if semicolons else code))
    if not body.strip():
        return False  # empty: the simple protocol's EmptyQuery, as goose gets it
    first = _FIRST_WORD.match(body)
    return not (first and first.group(1).upper() == "COPY")  # COPY's data exchange cannot be pipelined


def _tokens(text: str) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) with kind "quoted", "comment", ";" or "code"; raises _Unsure."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == ";":
            yield ";", i, i + 1
            i += 1
        elif c in "'\"":
            j = text.find(c, i + 1)
            while j != -1 and text.startswith(c * 2, j):
                j = text.find(c, j + 2)
            if j == -1 or (c == "'" and "\\" in text[i:j]):
                raise _Unsure  # unterminated, or an escape whose meaning depends on the server's settings
            yield "quoted", i, j + 1
            i = j + 1
        elif c == "$" and (i == 0 or not _IDENT_CHAR.match(text[i - 1])) and (tag := _DOLLAR_TAG.match(text, i)):
            j = text.find(tag.group(0), tag.end())
            if j == -1:
                raise _Unsure
            yield "quoted", i, j + len(tag.group(0))
            i = j + len(tag.group(0))
        elif text.startswith("--", i):
            j = text.find("\n", i)
            j = n if j == -1 else j + 1
            yield "comment", i, j
            i = j
        elif text.startswith("/*", i):
            j = _end_of_block_comment(text, i)
            yield "comment", i, j
            i = j
        else:
            special = _SPECIAL.search(text, i + 1)
            j = special.start() if special else n
            yield "code", i, j
            i = j


def _end_of_block_comment(text: str, i: int) -> int:
    """Index just past the block comment opening at i; they nest in PostgreSQL."""
    depth = 0
    while i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise _Unsure
