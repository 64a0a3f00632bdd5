"""`-- +goose ENVSUB ON` substitution, a port of github.com/mfridman/interpolate v0.0.2 (what goose uses).

Supported: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR?message}`, `${VAR:offset[:length]}`;
`$$` and `\\$` give a literal `$`; `$(` is left alone. Errors carry interpolate's own wording because goose
prints them verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass


class EnvsubError(ValueError):
    """A malformed expansion or a `${VAR?message}` whose variable is unset."""


@dataclass
class _Parser:
    text: str
    pos: int = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        c = self.peek()
        if c:
            self.pos += 1
        return c

    def scan_until(self, stop: Callable[[str], bool]) -> str:
        start = self.pos
        while self.pos < len(self.text) and not stop(self.text[self.pos]):
            self.pos += 1
        return self.text[start:self.pos]

    def identifier(self) -> str:
        c = self.peek()
        if not c.isalpha():
            raise EnvsubError(f"Expected identifier to start with a letter, got {c or '%!c(int32=-1)'}")
        return self.scan_until(lambda r: not (r.isalpha() or r.isnumeric() or r == "_"))

    def expression(self, env: Mapping[str, str], stop: str = "") -> str:
        """Parse and expand in one pass; lazily-evaluated defaults do not matter for the result."""
        out: list[str] = []
        while True:
            c = self.peek()
            if c == "" or (stop and c in stop):
                return "".join(out)
            rest = self.text[self.pos:]
            if rest.startswith("\\\\"):
                self.pos += 2
                out.append("\\\\")
                continue
            if rest.startswith(("\\$", "$$")):
                self.pos += 2
                out.append("$")
                continue
            if rest.startswith("$("):
                self.pos += 2
                out.append("$(")
                continue
            if c == "$" and self.pos < len(self.text) - 1:
                out.append(self.expansion(env))
                continue
            self.next()
            out.append(c + self.scan_until(lambda r: r in "$\\" or (bool(stop) and r in stop)))

    def expansion(self, env: Mapping[str, str]) -> str:
        self.next()  # "$"
        if self.peek() != "{":
            return env.get(self.identifier(), "")
        self.next()
        name = self.identifier()
        if self.peek() == "}":
            self.next()
            return env.get(name, "")
        op = self.next()
        if op == ":":
            if self.peek() == "-":
                self.next()
                op = ":-"
        elif op not in ("?", "-"):
            raise EnvsubError(f"Expected an operator, got {op or '%!c(int32=-1)'}")
        if op == ":-":
            content = self.expression(env, "}")
            value = env.get(name, "") or content
        elif op == "-":
            content = self.expression(env, "}")
            value = env.get(name, content)
        elif op == "?":
            message = self.expression(env, "}")
            if name not in env:
                raise EnvsubError(f"${name}: {message or 'not set'}")
            value = env[name]
        else:
            value = self.substring(env.get(name, ""))
        end = self.next()
        if end != "}":
            raise EnvsubError(f"Expected brace expansion to end with }}, got {end or '%!c(int32=-1)'}")
        return value

    def substring(self, value: str) -> str:
        offset_text = self.scan_until(lambda r: r in ":}")
        offset = _atoi(offset_text, "offset")
        start = max(0, min(offset + len(value) if offset < 0 else offset, len(value)))
        if self.peek() == "}":
            return value[start:]
        self.next()
        length = _atoi(self.scan_until(lambda r: r == "}"), "length")
        end = length + start if length >= 0 else max(length + len(value), start)
        return value[start:min(end, len(value))]


def _atoi(text: str, what: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise EnvsubError(f'Unable to parse {what}: strconv.Atoi: parsing "{text.strip()}": invalid syntax') from None


# Never substituted, whatever the environment holds: the connection itself. A migration author (someone
# who may edit a ConfigMap) could otherwise write `${DATABASE_URL}` into a statement whose error message
# then carries the password, in any disguise (`reverse('${DATABASE_URL}')`), past every redaction.
_WITHHELD = re.compile(r"^(DATABASE_URL|PG[A-Z_]*)$")


def environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables ENVSUB may read from a process environment: all but DATABASE_URL and libpq's PG*."""
    return {k: v for k, v in environ.items() if not _WITHHELD.match(k)}


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Expand `text` like goose's ENVSUB does, reading variables from `env`."""
    return _Parser(text).expression(env)
