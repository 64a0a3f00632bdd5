"""e2e fixtures: the CRD installed, the operator running (a real `schemagate operator` subprocess), and a
per-test application namespace with the migration Job's RBAC, a Secret, ConfigMaps and a SchemaMigration.

The operator runs locally with the session's kubeconfig and a 1 s resync, so tests converge quickly. Its
log is shown when a wait fails. Migration pods reach PostgreSQL on 127.0.0.1 through the pod runner.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from kube_fixtures import Kube, wait_until

REPO = Path(__file__).resolve().parents[2]
SCHEMAGATE = Path(sys.executable).with_name("schemagate")

MIGRATION_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: schemagate-migration}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: schemagate-migration}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: schemagate-migration}
subjects: [{kind: ServiceAccount, name: default}]
"""


class Operator:
    """`schemagate operator` as a child process that a test may kill (SIGKILL) and start again."""

    def __init__(self, kubeconfig: Path, log: Path):
        from devenv.postgres import free_port

        self.kubeconfig = kubeconfig
        self.log = log
        self.liveness = f"http://127.0.0.1:{free_port()}/healthz"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), SCHEMAGATE_RESYNC_SECONDS="1",
                   SCHEMAGATE_JOB_IMAGE="schemagate:dev")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(SCHEMAGATE), "operator", "--all-namespaces",
                                          "--liveness", self.liveness], env=env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """As a crash would: no cleanup handlers, no goodbye."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def crd(kube: Kube) -> None:
    kube.kubectl("apply", "-f", str(REPO / "crds"))
    kube.kubectl("wait", "--for=condition=Established", "crd/schemamigrations.schemagate.io", "--timeout=60s")


@pytest.fixture(scope="session")
def operator(kube: Kube, crd: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    if not SCHEMAGATE.exists():
        pytest.fail(f"{SCHEMAGATE} not found: install the project into the venv (pip install -e .)")
    op = Operator(kube.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()


class App:
    """One application's namespace as a platform team would set it up, driven through kubectl."""

    def __init__(self, kube: Kube, namespace: str, operator: Operator, database_url: str):
        self.kube, self.namespace, self.operator, self.database_url = kube, namespace, operator, database_url

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.kube.kubectl("-n", self.namespace, *args, **kw)

    def apply(self, *docs: dict[str, Any] | str) -> None:
        text = "\n---\n".join(d if isinstance(d, str) else yaml.safe_dump(d) for d in docs)
        self.kubectl("apply", "-f", "-", input=text)

    def secret(self, url: str, name: str = "app-db") -> None:
        self.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                    "stringData": {"url": url}})

    def migrations(self, files: dict[str, str], name: str = "app-migrations") -> None:
        self.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": files})

    def schemamigration(self, name: str = "app", config_maps: tuple[str, ...] = ("app-migrations",),
                        secret: str = "app-db", **spec: Any) -> None:
        self.apply({"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration", "metadata": {"name": name},
                    "spec": {"database": {"secretRef": {"name": secret}},
                             "source": {"configMaps": list(config_maps)}, **spec}})

    def get(self, name: str = "app") -> dict[str, Any]:
        return json.loads(self.kubectl("get", "schemamigration", name, "-o", "json").stdout)

    def status(self, name: str = "app") -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def condition(self, ctype: str, name: str = "app") -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == ctype), {})

    def wait_condition(self, ctype: str, status: str, reason: str | None = None, name: str = "app",
                       timeout: float = 90) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            c = self.condition(ctype, name)
            ok = c.get("status") == status and (reason is None or c.get("reason") == reason)
            return c if ok else None

        return self._wait(name, f"{name}: {ctype}={status} {reason or ''}", probe, timeout)

    def wait_ready(self, version: int, name: str = "app", timeout: float = 90) -> dict[str, Any]:
        """Ready=True at `version`, CURRENT = TARGET, as `kubectl get smig` shows it."""
        def probe() -> dict[str, Any] | None:
            status = self.status(name)
            ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
            ok = (ready.get("status"), ready.get("reason"), status.get("currentVersion"), status.get("targetVersion"),
                  status.get("phase")) == ("True", "UpToDate", version, version, "Ready")
            return status if ok else None

        return self._wait(name, f"{name}: Ready at version {version}", probe, timeout)

    def _wait(self, name: str, what: str, probe: Any, timeout: float) -> Any:
        """wait_until, printing the object's status and the operator's log when it times out."""
        try:
            return wait_until(what, probe, timeout=timeout)
        except pytest.fail.Exception:
            print(f"--- status of {name}:\n{json.dumps(self.status(name), indent=1)}\n--- operator log:\n"
                  f"{self.operator.tail()}")
            raise

    def jobs(self, name: str = "app") -> list[dict[str, Any]]:
        out = self.kubectl("get", "jobs", "-l", f"schemagate.io/migration={name}", "-o", "json").stdout
        return json.loads(out)["items"]

    def db_versions(self, url: str | None = None) -> list[int]:
        """Applied versions as goose's table records them, one row per application."""
        import psycopg

        with psycopg.connect(url or self.database_url) as conn:
            exists = conn.execute("SELECT to_regclass('goose_db_version') IS NOT NULL").fetchone()[0]
            if not exists:
                return []
            rows = conn.execute("SELECT version_id FROM goose_db_version WHERE version_id > 0 ORDER BY id").fetchall()
        return [r[0] for r in rows]

    def table_exists(self, table: str) -> bool:
        import psycopg

        with psycopg.connect(self.database_url) as conn:
            return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0])


@pytest.fixture
def app(kube: Kube, namespace: str, operator: Operator, database_url: str) -> App:
    a = App(kube, namespace, operator, database_url)
    a.apply(MIGRATION_RBAC)
    return a


__all__ = ["App", "Operator", "wait_until"]
