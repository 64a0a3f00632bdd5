"""A throw-away PostgreSQL cluster in a temporary directory on a free port, reachable from this machine
and from the dev cluster's pods.

It listens on every address, so it is reachable on the node's address (hostnet.NODE_IP) whether the
bridge was made before or after it started, and pg_hba admits only loopback and the pod network, with a
password (SCRAM). The superuser's password is new for every server. initdb refuses to run as root, so
when we are root the server runs as the `postgres` system user that Debian's package creates.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

SUPERUSER = "postgres"
# Pods reach the server on the node's address; hostnet owns these numbers.
NODE_IP, POD_NETWORK, BRIDGE = "10.244.0.1", "10.244.0.0/16", "sgbr0"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries are missing or the server did not start."""


def find_bindir() -> Path:
    """Directory of initdb/pg_ctl: $PG_BINDIR, then Debian's newest /usr/lib/postgresql/N/bin, then PATH."""
    if env := os.environ.get("PG_BINDIR"):
        return Path(env)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; run hack/install-postgres.sh "
        "or set PG_BINDIR"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_network_up() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


@dataclass(frozen=True)
class PostgresServer:
    port: int
    datadir: Path
    bindir: Path
    password: str

    @property
    def host(self) -> str:
        """The address both this machine and the cluster's pods reach: the node's, while a node runs."""
        return NODE_IP if node_network_up() else "127.0.0.1"

    def url(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        return f"postgresql://{user}:{password or self.password}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create database `name` (dropping any leftover) and return its superuser URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _run_as(user: str | None, argv: list[str], **kw) -> subprocess.CompletedProcess:
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, check=False, capture_output=True, text=True, **kw)


@contextlib.contextmanager
def running_postgres(base: Path | None = None) -> Iterator[PostgresServer]:
    """Start a fresh cluster; stop it and remove its directory on exit, whatever happened."""
    bindir = find_bindir()
    owner = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresUnavailable("running as root needs the 'postgres' system user") from exc
        owner = "postgres"
    top = Path(tempfile.mkdtemp(prefix="schemagate-pg-", dir=base))
    datadir = top / "data"
    if owner:
        shutil.chown(top, owner)
        os.chmod(top, 0o700)
    password = secrets.token_urlsafe(18)
    pwfile = top / "pwfile"
    pwfile.write_text(password + "\n")
    if owner:
        shutil.chown(pwfile, owner)
    port = free_port()
    try:
        init = _run_as(owner, [str(bindir / "initdb"), "-D", str(datadir), "-U", SUPERUSER,
                               "--pwfile", str(pwfile), "-A", "scram-sha-256", "-E", "UTF8",
                               "--no-sync", "--locale=C"])
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()}")
        pwfile.unlink()
        # Loopback and the pod network, with a password; any other source matches no line and is refused.
        (datadir / "pg_hba.conf").write_text(
            "local all all scram-sha-256\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            f"host all all {POD_NETWORK} scram-sha-256\n")
        opts = (f"-c listen_addresses=* -c port={port} -c unix_socket_directories={top} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        start = _run_as(owner, [str(bindir / "pg_ctl"), "-D", str(datadir), "-o", opts,
                                "-l", str(top / "server.log"), "-w", "-t", "60", "start"])
        if start.returncode != 0:
            log = (top / "server.log").read_text() if (top / "server.log").exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {start.stderr.strip()}\n{log[-2000:]}")
        server = PostgresServer(port, datadir, bindir, password)
        _wait_ready(server)
        yield server
    finally:
        if (datadir / "postmaster.pid").exists():
            _run_as(owner, [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(top, ignore_errors=True)


def _wait_ready(server: PostgresServer, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
