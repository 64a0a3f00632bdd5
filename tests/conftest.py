"""Shared fixtures. Missing dependencies fail with the reason; nothing skips quietly."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["run_report", "shared_cluster", "kube_fixtures", "operator_fixtures"]


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the whole session: SCHEMAGATE_TEST_PG_URL's, or our own throw-away one."""
    from devenv.postgres import running_postgres

    if os.environ.get("SCHEMAGATE_TEST_PG_URL"):
        yield _ExternalServer(os.environ["SCHEMAGATE_TEST_PG_URL"])
        return
    with running_postgres() as server:
        yield server


class _ExternalServer:
    def __init__(self, url: str):
        import psycopg.conninfo

        self._info = psycopg.conninfo.conninfo_to_dict(url)
        self.host = self._info.get("host", "127.0.0.1")
        self.port = int(self._info.get("port", 5432))
        self.password = self._info.get("password", "")

    def url(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        info = dict(self._info, dbname=dbname)
        if user:
            info["user"] = user
        if password:
            info["password"] = password
        from psycopg.conninfo import make_conninfo

        return make_conninfo(**info)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture
def database_url(postgres_server) -> str:
    """A fresh, empty database for one test."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def goose_bin() -> str:
    path = os.environ.get("GOOSE_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("GOOSE_BIN is not set to the goose binary; run the tests through hack/test.sh "
                    "(it builds goose with hack/build-goose.sh)")
    return path
