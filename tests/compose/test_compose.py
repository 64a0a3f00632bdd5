"""examples/compose for real: podman (a test-owned one, see compose_support) and Debian's docker-compose
on our image from the Dockerfile and a PostgreSQL image built here. Up → `migrate` exited 0, the schema is
there, the application runs (after its own `schemagate verify`); a broken migration → the application is
never started and `migrate`'s log names the file and the statement; down → nothing of the project left.

Needs hack/install-compose.sh (podman, netavark, aardvark-dns, docker-compose from Debian's packages).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from compose_support import EXAMPLE, REPO, Podman, postgres_image
from devenv import images
from kube_fixtures import wait_until

# podman's networks are host bridges and iptables chains on fixed subnets, one set per process, and
# netavark turns the machine's ip_forward on until the test puts it back (compose_support.restore_forwarding),
# which the cluster's egress test checks: one at a time with it, beside the other cluster tests.
pytestmark = pytest.mark.serial("forwarding")

OVERRIDE = Path(__file__).with_name("compose.test.yaml")
BROKEN = ("-- +goose Up\nCREATE TABLE IF NOT EXISTS audit_log (id bigint PRIMARY KEY);\n"
          "ALTER TABLE no_such_table ADD COLUMN x int;\n-- +goose Down\nDROP TABLE IF EXISTS audit_log;\n")


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    archives = [images.schemagate_image().archive, postgres_image().archive]
    root = tmp_path_factory.mktemp("podman")
    p = Podman(root)
    try:
        for archive in archives:
            p("load", "--quiet", "--input", str(archive))
        p.start()
        yield p
    finally:
        p.stop()
        shutil.rmtree(root, ignore_errors=True)


def _env(migrations: Path) -> dict[str, str]:
    return {"SCHEMAGATE_IMAGE": images.SCHEMAGATE_IMAGE, "POSTGRES_IMAGE": "localhost/schemagate-postgres:15",
            "MIGRATIONS_DIR": str(migrations)}


def _containers(podman: Podman, project: str) -> dict[str, dict[str, Any]]:
    """service → its container, as podman inspects it."""
    ids = podman("ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={project}").stdout.split()
    found = json.loads(podman("inspect", *ids).stdout) if ids else []
    return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in found}


def _project_left(podman: Podman, project: str) -> dict[str, list[str]]:
    label = f"label=com.docker.compose.project={project}"
    return {
        "containers": podman("ps", "--all", "--quiet", "--filter", label).stdout.split(),
        "volumes": podman("volume", "ls", "--quiet", "--filter", label).stdout.split(),
        "networks": [n for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split()
                     if n.startswith(f"{project}_")],
    }


def _psql(podman: Podman, container: str, sql: str) -> str:
    return podman("exec", container, "psql", "-U", "app", "-d", "app", "-tAc", sql).stdout.strip()


def _down(podman: Podman, project: str, env: dict[str, str]) -> None:
    done = podman.compose(project, "down", "--volumes", "--timeout", "2", files=(OVERRIDE,), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _project_left(podman, project) == {"containers": [], "volumes": [], "networks": []}


def test_up_migrates_once_then_starts_the_app_and_down_removes_everything(podman: Podman):
    project, env = "sgcompose-ok", _env(REPO / "migrations")
    try:
        up = podman.compose(project, "up", "--detach", files=(OVERRIDE,), env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        running = wait_until("the app container running", lambda: (
            (c := _containers(podman, project)).get("app", {}).get("State", {}).get("Running") and c), timeout=60)
        migrate = running["migrate"]["State"]
        assert (migrate["Status"], migrate["ExitCode"]) == ("exited", 0)
        # The app started after migrate had finished, never before.
        assert running["app"]["State"]["StartedAt"] > migrate["FinishedAt"]
        logs = podman.compose(project, "logs", "--no-color", "app", files=(OVERRIDE,), env=env)
        assert "is at version 1 (need 1)" in logs.stdout + logs.stderr, logs.stdout + logs.stderr
        health = podman("exec", running["app"]["Id"], "python3", "-c",
                        "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/healthz').status)")
        assert health.stdout.strip() == "200"
        db = running["postgres"]["Id"]
        assert _psql(podman, db, "SELECT max(version_id) FROM goose_db_version WHERE is_applied") == "1"
        tables = set(_psql(podman, db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").split())
        assert {"namespaces", "targets", "bootstrap_tokens", "goose_db_version"} <= tables, tables
        # A second `up` runs migrate again: goose's table says there is nothing to do, the app stays.
        again = podman.compose(project, "up", "--detach", files=(OVERRIDE,), env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert _psql(podman, db, "SELECT count(*) FROM goose_db_version WHERE version_id = 1") == "1"
    finally:
        _down(podman, project, env)


def test_a_broken_migration_keeps_the_app_from_starting_and_migrate_says_why(podman: Podman, tmp_path: Path):
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    shutil.copy(REPO / "migrations" / "00001_initial_schema.sql", migrations)
    (migrations / "00002_audit_log.sql").write_text(BROKEN)
    project, env = "sgcompose-broken", _env(migrations)
    try:
        up = podman.compose(project, "up", "--detach", files=(OVERRIDE,), env=env)
        assert up.returncode != 0, up.stdout + up.stderr
        found = _containers(podman, project)
        assert (found["migrate"]["State"]["Status"], found["migrate"]["State"]["ExitCode"] != 0) == ("exited", True)
        # docker-compose 1.29 says which service it did not bring up, and which container failed it.
        assert "ERROR: for app" in up.stderr, up.stderr
        assert f'Container "{found["migrate"]["Id"][:12]}" exited with code 1' in up.stderr, up.stderr
        # Never started: not created at all, or created and never run.
        app = found.get("app")
        assert app is None or app["State"]["StartedAt"].startswith("0001-01-01"), app["State"] if app else None
        logs = podman.compose(project, "logs", "--no-color", "migrate", files=(OVERRIDE,), env=env)
        text = logs.stdout + logs.stderr
        assert "00002_audit_log.sql" in text and "ALTER TABLE no_such_table" in text, text
        assert "local-only" not in text  # the URL's password is not in the log
        # 00001 is applied, 00002 rolled back in its transaction.
        db = found["postgres"]["Id"]
        assert _psql(podman, db, "SELECT max(version_id) FROM goose_db_version WHERE is_applied") == "1"
        assert _psql(podman, db, "SELECT to_regclass('audit_log') IS NULL") == "t"
    finally:
        _down(podman, project, env)
