"""Helpers for the migration engine's database tests: write migration dirs, run the CLI, run goose."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from schemagate import cli

SCHEMAGATE = [sys.executable, "-m", "schemagate.cli"]


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.out)

    @property
    def text(self) -> str:
        return self.out + self.err


def write_dir(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def sg(url: str, directory: Path | str, *command: str, extra: tuple[str, ...] = ()) -> Run:
    """`schemagate migrate` in-process (fast); --json is added so the result can be inspected."""
    argv = ["migrate", "--dir", str(directory), "--database-url", url, "--json", "--lock-wait", "30", *extra,
            *command]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return Run(code, out.getvalue(), err.getvalue())


def sg_process(url: str, directory: Path | str, *command: str, extra: tuple[str, ...] = (),
               env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([*SCHEMAGATE, "migrate", "--dir", str(directory), "--database-url", url, "--json",
                             "--lock-wait", "120", *extra, *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or os.environ.copy())


def goose(goose_bin: str, url: str, directory: Path | str, *command: str, table: str | None = None) -> Run:
    argv = [goose_bin, "-dir", str(directory)]
    if table:
        argv += ["-table", table]
    proc = subprocess.run([*argv, "postgres", url, *command], capture_output=True, text=True, timeout=120)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def rows(url: str, table: str = "goose_db_version") -> list[tuple[int, bool]]:
    with psycopg.connect(url) as conn:
        return [(int(v), bool(a)) for v, a in conn.execute(f"SELECT version_id, is_applied FROM {table} ORDER BY id")]


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params or None)
        return list(cur.fetchall()) if cur.description else []


def mig(up: str, down: str = "", *, extra: str = "") -> str:
    text = f"-- +goose Up\n{extra}{up}\n"
    if down:
        text += f"-- +goose Down\n{down}\n"
    return text


def numbered(n: int) -> dict[str, str]:
    """n migrations, each creating a table and logging itself (so a double apply is visible)."""
    files = {"00001_log.sql": mig("CREATE TABLE applied_log (version int NOT NULL);\nINSERT INTO applied_log VALUES (1);",
                                  "DROP TABLE applied_log;")}
    for v in range(2, n + 1):
        files[f"{v:05d}_t{v}.sql"] = mig(f"CREATE TABLE t{v} (id int);\nINSERT INTO applied_log VALUES ({v});",
                                         f"DROP TABLE t{v};\nDELETE FROM applied_log WHERE version = {v};")
    return files
