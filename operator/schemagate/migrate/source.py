"""Migration files: names → versions, contents → parsed statements and checksums. Pure except load_dir.

Every file is named, versioned, parsed (both directions) and checksummed here, before any database work,
so a broken file anywhere stops the run before the first statement. Rules follow the goose CLI: every
`*.sql` file in the directory must be a migration (`<version>_<name>.sql`, version ≥ 1); other names are
ignored, except `<version>_*.go` which goose would treat as a Go migration we cannot run.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from schemagate.api import reasons
from schemagate.migrate import rules
from schemagate.migrate.errors import MigrateError
from schemagate.migrate.parser import MigrationParseError, ParsedMigration, go_quote, parse

_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Migration:
    version: int
    file: str  # base name, as goose prints it
    sha256: str  # of the file's bytes (UTF-8)
    parsed: ParsedMigration
    # What the writing rules read from the text (annotations).
    notes: rules.FileNotes = field(default_factory=rules.FileNotes)


def version_of(name: str) -> int:
    """goose's NumericComponent: the integer before the first `_`; raises ValueError with goose's words."""
    base = os.path.basename(name)
    if not base.endswith((".sql", ".go")):
        raise ValueError("migration file does not have .sql or .go file extension")
    if "_" not in base:
        raise ValueError("no filename separator '_' found")
    before = base.split("_", 1)[0]
    if not re.fullmatch(r"[+-]?[0-9]+", before):
        raise ValueError(f"failed to parse version from migration file: {base}: "
                         f"strconv.ParseInt: parsing {go_quote(before)}: invalid syntax")
    n = int(before)
    if n > _INT64_MAX or n < -_INT64_MAX - 1:
        raise ValueError(f"failed to parse version from migration file: {base}: "
                         f"strconv.ParseInt: parsing {go_quote(before)}: value out of range")
    if n < 1:
        raise ValueError("migration version must be greater than zero")
    return n


def version_argument(text: str, who: str) -> int:
    """A VERSION given on the command line (up-to, down-to, accept-checksum, plan up-to ...): a number, not
    negative; else InvalidArguments, its message starting with `who` (the verb)."""
    try:
        version = int(text)
    except ValueError:
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"{who}: {text!r} is not a version number") from None
    if version < 0:
        raise MigrateError(reasons.INVALID_ARGUMENTS, f"{who}: version must not be negative")
    return version


def _invalid(problems: list[tuple[str, int | None, str]]) -> MigrateError:
    """One error for all bad files: the first in the structured fields, every one in `details`."""
    file, line, message = problems[0]
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    where = f"{file}:{line}" if line else file
    return MigrateError(
        reasons.INVALID_MIGRATIONS, f"invalid migration {where}: {message}{more}", file=file, line=line,
        details=[f"{f}:{ln}: {m}" if ln else f"{f}: {m}" for f, ln, m in problems],
    )


def load_files(files: Mapping[str, str], env: Mapping[str, str] | None = None) -> list[Migration]:
    """Validate and parse in-memory migrations (name → text, e.g. merged ConfigMaps), sorted by version."""
    problems: list[tuple[str, int | None, str]] = []
    by_version: dict[int, str] = {}
    out: list[Migration] = []
    for name in sorted(files, key=os.path.basename):
        base = os.path.basename(name)
        if base.endswith(".go") and not base.endswith("_test.go"):
            try:
                version_of(base)
            except ValueError:
                continue  # a helper file, goose ignores it too
            problems.append((base, None, "Go migrations are not supported; only .sql migrations can run"))
            continue
        if not base.endswith(".sql"):
            continue
        try:
            version = version_of(base)
        except ValueError as e:
            problems.append((base, None, f"could not parse SQL migration file {go_quote(base)}: {e}"))
            continue
        if version in by_version:
            problems.append((base, None, f"found duplicate migration version {version}: "
                                         f"existing {by_version[version]}, current {base}"))
            continue
        by_version[version] = base
        text = files[name]
        try:
            parsed = parse(text, base, env)
        except MigrationParseError as e:
            problems.append((base, e.line, e.message))
            continue
        out.append(Migration(version, base, hashlib.sha256(text.encode("utf-8")).hexdigest(), parsed,
                             rules.notes(text)))
    if problems:
        raise _invalid(problems)
    return sorted(out, key=lambda m: m.version)


def read_dir(path: str | os.PathLike[str]) -> dict[str, str]:
    """The directory's candidate files (name → text); errors name the directory or file."""
    d = Path(path)
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except FileNotFoundError:
        raise MigrateError(reasons.INVALID_MIGRATIONS, f"migrations directory {d} does not exist") from None
    except NotADirectoryError:
        raise MigrateError(reasons.INVALID_MIGRATIONS, f"migrations directory {d} is not a directory") from None
    except PermissionError:
        raise MigrateError(reasons.INVALID_MIGRATIONS,
                           f"cannot read migrations directory {d}: permission denied") from None
    files: dict[str, str] = {}
    problems: list[tuple[str, int | None, str]] = []
    for entry in entries:
        if not entry.name.endswith((".sql", ".go")):
            continue
        if not entry.is_file():
            if entry.name.endswith(".sql"):  # goose globs it and fails to read it: never a quiet skip
                problems.append((entry.name, None, f"{entry.path} is not a regular file (a dangling symlink or "
                                                   "a directory)"))
            continue
        try:
            files[entry.name] = Path(entry.path).read_bytes().decode("utf-8")
        except PermissionError:
            problems.append((entry.name, None, f"cannot read {entry.path}: permission denied"))
        except UnicodeDecodeError as e:
            problems.append((entry.name, None, f"{entry.path} is not UTF-8 text (byte {e.start})"))
        except OSError as e:
            problems.append((entry.name, None, f"cannot read {entry.path}: {e.strerror}"))
    if problems:
        raise _invalid(problems)
    return files


def load_dir(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> list[Migration]:
    return load_files(read_dir(path), env)


def digest_versions(versions: Iterable[int], target: int | None, rollback: Iterable[int] = ()) -> frozenset[int]:
    """The versions a run's digest covers: every file up to the target (all when None) plus the ones it
    rolls back. The same set the operator's plan hash covers, so approving a plan approves these files."""
    return frozenset(v for v in versions if target is None or v <= target) | frozenset(rollback)


def files_digest(files: Iterable[tuple[int, str, str]], versions: Collection[int]) -> str:
    """sha256 hex over the sorted (version, file name, sha256) of the files whose version is in `versions`.

    Operator and runner both call this: the operator over the ConfigMaps it planned with, the runner over
    the files its pod mounted. A file edited, added (under the target) or removed in between changes it.
    """
    rows = sorted((v, name, sha) for v, name, sha in files if v in versions)
    body = "".join(f"{v}\t{name}\t{sha}\n" for v, name, sha in rows)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def run_digest(files: Iterable[tuple[int, str, str]], target: int | None, rollback: Iterable[int] = ()) -> str:
    """The digest of one run: `files_digest` over the (version, file name, sha256) rows `digest_versions`
    covers. Plan, operator and runner all compute it here, so they cannot disagree on what is pinned."""
    rows = list(files)
    return files_digest(rows, digest_versions((v for v, _, _ in rows), target, rollback))
