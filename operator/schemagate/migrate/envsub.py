"""`-- +goose ENVSUB ON` substitution, a port of github.com/mfridman/interpolate v0.0.2 (what goose uses).

Supported: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR?message}`, `${VAR:offset[:length]}`;
`$$` and `\\$` give a literal `$`; `$(` is left alone. Errors carry interpolate's own wording because goose
prints them verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
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
# SCHEMAGATE_* are the runner's own (its declarations, the values below). Any PG prefix, as the CRD
# refuses it: libpq reads PG + upper case only, but one rule is easier to state and to trust.
_WITHHELD = re.compile(r"^(DATABASE_URL|PG.*|SCHEMAGATE_.*)$")

NAMES_VARIABLE = "SCHEMAGATE_ENVSUB_NAMES"
"""The declared names, comma-separated; `PREFIX*` declares every name with that prefix (an envFrom)."""
REDACT_VARIABLE = "SCHEMAGATE_ENVSUB_REDACT"
"""Declared names (same form) whose values come from a Secret: masked in every message the runner writes
(a statement failing on one quotes it: `invalid input syntax for type integer: "…"`)."""
REDACT_MIN = 4  # shorter values would mask ordinary words of a message; too short to be a credential
VALUE_PREFIX = "SCHEMAGATE_ENV_"
"""The migration Job passes a declared NAME's value as SCHEMAGATE_ENV_NAME, never as NAME itself: a
SchemaMigration author then cannot set a variable the runner's process reads (PYTHONPATH, LD_PRELOAD,
KUBERNETES_SERVICE_HOST, a proxy) — only values for ENVSUB."""


def withheld(name: str) -> bool:
    return bool(_WITHHELD.match(name))


def environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables ENVSUB may read from a process environment when nothing is declared (the CLI as it
    always was): all but DATABASE_URL, libpq's PG* and SCHEMAGATE_*."""
    return {k: v for k, v in environ.items() if not withheld(k)}


class Undeclared(EnvsubError):
    """A reference to a variable no one declared (or one that is never substituted)."""

    def __init__(self, name: str):
        if withheld(name):
            why = (f"${name} is never substituted: DATABASE_URL, PG* and SCHEMAGATE_* belong to the runner "
                   f"(the connection and its settings); use another name")
        else:
            why = (f"${name} is not declared: declare it in the SchemaMigration's spec.job.env (or spec.job.envFrom "
                   f"with a prefix it starts with); running schemagate migrate yourself, --envsub-allow {name}")
        super().__init__(why)
        self.name = name


@dataclass(frozen=True)
class Declared:
    """Which names ENVSUB may read: exact names and prefixes (`PREFIX*` entries)."""

    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @staticmethod
    def parse(entries: Iterable[str]) -> Declared:
        """From `NAME` and `PREFIX*` entries (SCHEMAGATE_ENVSUB_NAMES split on commas, --envsub-allow)."""
        names: set[str] = set()
        prefixes: list[str] = []
        for entry in (e.strip() for e in entries):
            if entry.endswith("*") and entry[:-1]:
                prefixes.append(entry[:-1])
            elif entry and "*" not in entry:
                names.add(entry)
        return Declared(frozenset(names), tuple(dict.fromkeys(prefixes)))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and not withheld(name) and (
            name in self.names or any(name.startswith(p) for p in self.prefixes))

    def entries(self) -> list[str]:
        return [*sorted(self.names), *(f"{p}*" for p in self.prefixes)]


class DeclaredEnv(Mapping[str, str]):
    """An ENVSUB environment of declared names only: a reference to any other name is an error
    (`Undeclared`), so a file can never read what its SchemaMigration did not give it.

    `unknown` are declared names whose values exist but are not known here (the operator's plan: values
    from a Secret or ConfigMap). They read as "" and are recorded in `used_unknown`: the plan says it could
    not check the statements they make, rather than refusing them."""

    def __init__(self, values: Mapping[str, str], declared: Declared, unknown: Declared = Declared(),
                 secret: Declared = Declared()):
        self.known = {k: v for k, v in values.items() if k in declared}
        self.declared = declared
        self.unknown = unknown
        self.secret = secret
        self.used_unknown: set[str] = set()

    def fresh(self) -> DeclaredEnv:
        """The same environment with nothing recorded yet (one per parsed file)."""
        return DeclaredEnv(self.known, self.declared, self.unknown, self.secret)

    def secret_values(self) -> list[str]:
        """The values from Secrets, longest first: what messages mask. Not a defence against a file written
        to show one (`reverse('${PW}')`): only against quoting it by mistake."""
        found = {v for k, v in self.known.items() if k in self.secret and len(v) >= REDACT_MIN}
        return sorted(found, key=len, reverse=True)

    def __getitem__(self, name: str) -> str:
        if name not in self.declared:
            raise Undeclared(name)
        if name in self.known:
            return self.known[name]
        if name in self.unknown:
            self.used_unknown.add(name)
            return ""
        raise KeyError(name)  # declared, not set (an optional Secret key that is absent): goose's "unset"

    def __iter__(self) -> Iterator[str]:
        return iter(self.known)

    def __len__(self) -> int:
        return len(self.known)


def from_process(environ: Mapping[str, str], allow: Iterable[str] = ()) -> Mapping[str, str]:
    """The runner's ENVSUB environment.

    Declared (the migration Job always is: it sets SCHEMAGATE_ENVSUB_NAMES, maybe empty; a person with
    `--envsub-allow NAME`, repeatable): only those names, each read from SCHEMAGATE_ENV_NAME, else NAME.
    Nothing declared (the CLI before declarations existed): every variable but DATABASE_URL, PG* and
    SCHEMAGATE_*, as before — the person's own shell."""
    allow = list(allow)
    if NAMES_VARIABLE not in environ and not allow:
        return environment(environ)
    declared = Declared.parse([*environ.get(NAMES_VARIABLE, "").split(","), *allow])
    secret = Declared.parse(environ.get(REDACT_VARIABLE, "").split(","))
    values: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith(VALUE_PREFIX):
            values.setdefault(key[len(VALUE_PREFIX):], value)
    for key, value in environ.items():
        if not key.startswith(VALUE_PREFIX) and key in declared:
            values.setdefault(key, value)
    return DeclaredEnv(values, declared, secret=secret)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Expand `text` like goose's ENVSUB does, reading variables from `env`."""
    return _Parser(text).expression(env)
