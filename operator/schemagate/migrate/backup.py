"""`--backup-file`: a pg_dump (custom format) of the database before a run changes it.

The password travels to pg_dump in PGPASSWORD, never on its command line (where `ps` shows it). The dump
is written to `<file>.partial` and renamed when pg_dump succeeds, so a file with the final name is always
a complete dump; a failed dump leaves nothing behind and stops the run before any migration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schemagate.api import reasons
from schemagate.migrate.dburl import redact
from schemagate.migrate.errors import MigrateError


@dataclass(frozen=True)
class Backup:
    file: str  # base name, as status records it
    bytes: int

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "bytes": self.bytes}


def pg_dump_call(url: str, path: str, env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) for pg_dump: the conninfo without its password, the password in PGPASSWORD."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url) if url else {}
    password = params.pop("password", None)
    child = dict(env)
    if password is not None:
        child["PGPASSWORD"] = str(password)
    argv = ["pg_dump", "--format=custom", "--no-password", f"--file={path}"]
    if params:
        argv.append(f"--dbname={make_conninfo(**{k: str(v) for k, v in params.items()})}")
    return argv, child


def dump(url: str, path: str) -> Backup:
    target = Path(path)
    if shutil.which("pg_dump") is None:
        raise MigrateError(reasons.BACKUP_FAILED, "backup failed: pg_dump is not on PATH (install PostgreSQL's "
                                                  "client tools, e.g. Debian's postgresql-client)")
    partial = target.with_name(target.name + ".partial")
    argv, env = pg_dump_call(url, str(partial), os.environ)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except OSError as e:
        raise MigrateError(reasons.BACKUP_FAILED, f"backup to {target} failed: {e.strerror}") from None
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        why = redact(" ".join(lines[-3:]) if lines else f"exit code {done.returncode}", url)
        raise MigrateError(reasons.BACKUP_FAILED, f"backup to {target} failed, nothing was applied: {why[:600]}")
    os.replace(partial, target)
    return Backup(target.name, target.stat().st_size)
