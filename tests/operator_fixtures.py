"""pytest plugin, for the e2e and fault tiers: the CRD installed, the operator running as the chart installs it (a pod of our image,
with the chart's ServiceAccount and RBAC, watching every namespace), and a per-test application namespace
with the migration Job's RBAC, a Secret, ConfigMaps and a SchemaMigration.

The operator resyncs every second, so tests converge quickly; its log is shown when a wait fails.
Migration pods and the operator reach PostgreSQL on the node's address (the database URLs name it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from kube_fixtures import Kube, wait_until

REPO = Path(__file__).resolve().parents[1]
OPERATOR_NAMESPACE = "schemagate-e2e"
RELEASE = "e2e"
HEALTH_PORT = 8080
METRICS_PORT = 8081
REPLICAS = 2  # the chart's default: a leader and a standby
LEADER_LEASE = "schemagate-operator-leader"
# The operator acts only in the namespaces its chart names (watch.namespaces), as an admin installs it;
# so the session's application namespaces are made up front and each test takes a fresh one.
POOL = [f"e2e-app-{i:03d}" for i in range(96)]  # every e2e and fault test takes one; none is reused
# What the tests' SchemaMigrations name besides the defaults, allowed as an admin would in the chart.
# NEVER_BUILT_IMAGE is allowed and never built or imported: a Job naming it cannot get its image
# (tests/e2e/test_pod_cannot_start.py).
NEVER_BUILT_IMAGE = "localhost/schemagate-never-built:e2e"
ALLOWED_IMAGES = ["localhost/app-migrations:v2", NEVER_BUILT_IMAGE]
ALLOWED_SERVICE_ACCOUNTS = ["config-server-migrator"]

class Operator:
    """The chart's operator Deployment (two replicas, one leads). A test may kill it as a crash would (every
    pod force-deleted with no grace, and kept down) and start it again, or kill only the leader's pod.
    Logs of killed pods are kept for diagnostics.

    The session's release (RELEASE in OPERATOR_NAMESPACE, watching POOL) serves every test; a test that
    kills it or its leader, or changes what it was installed with, takes a release of its own
    (`own_operator`), and so need not run alone."""

    def __init__(self, kube: Kube, broker: Path | None = None, *, release: str = RELEASE,
                 namespace: str = OPERATOR_NAMESPACE, pool: list[str] = POOL):
        self.kube = kube
        self.release, self.namespace, self.pool = release, namespace, list(pool)
        self._earlier_logs = ""
        self._free = list(pool)
        self._broker = broker  # on an xdist worker: the pool is the controller's (tests/shared_cluster.py)

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.kube.kubectl("-n", self.namespace, *args, **kw)

    @property
    def deployment(self) -> str:
        return f"deployment/{self.release}-schemagate"

    @property
    def admission_binding(self) -> str:
        """The ValidatingAdmissionPolicyBinding that refuses what the installer did not allow."""
        return f"{self.release}-schemagate-schemamigrations"

    def install(self) -> None:
        repository, _, tag = self.kube.image.rpartition(":")
        self.kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in self.pool))
        self.kube.helm("upgrade", "--install", self.release, str(REPO / "charts" / "schemagate"), "-n", self.namespace,
                       "--create-namespace", "--wait", "--timeout=180s",
                       "--set", f"watch.namespaces={{{','.join(self.pool)}}}", "--set", "rbac.secrets=namespace",
                       "--set", "rbac.listSecrets=true",
                       "--set", f"jobs.allowedImages={{{','.join(ALLOWED_IMAGES)}}}",
                       "--set", f"jobs.allowedServiceAccounts={{{','.join(ALLOWED_SERVICE_ACCOUNTS)}}}",
                       "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                       "--set", "operator.resyncSeconds=1", "--set", f"operator.healthPort={HEALTH_PORT}")

    def take_namespace(self) -> str:
        """A namespace of the pool that no test used yet, once the chart's ServiceAccount is in it."""
        if self._broker is not None:
            from shared_cluster import ask

            name = ask(self._broker, "namespace")
        else:
            name = self.next_free()
        wait_until(f"ServiceAccount schemagate-migration in namespace {name}", lambda: self.kube.read(
            f"/api/v1/namespaces/{name}/serviceaccounts/schemagate-migration") is not None, timeout=30)
        return name

    def next_free(self) -> str:
        """The pool's next unused name (on the xdist controller, for every worker)."""
        if not self._free:
            pytest.fail(f"all {len(self.pool)} e2e namespaces are used: make POOL in tests/operator_fixtures.py larger")
        return self._free.pop(0)

    def clear_namespace(self, name: str) -> None:
        """What a used namespace runs, deleted; the namespace stays (the chart's Role goes with it, and it
        is never reused). Otherwise the gate tests' Deployments and StatefulSets keep running one session
        long, and every later test shares the 2-core node with their pods."""
        self.kube.kubectl("-n", name, "delete", "schemamigrations,schemamigrationsets", "--all", "--wait=false",
                          check=False)
        self.kube.kubectl("-n", name, "delete", "deployments,statefulsets,jobs,pods", "--all", "--wait=false",
                          "--grace-period=1", check=False)

    def pods(self) -> list[dict[str, Any]]:
        found = self.kube.read(f"/api/v1/namespaces/{self.namespace}/pods",
                               labelSelector=f"app.kubernetes.io/instance={self.release}")
        return [p for p in found["items"] if not p["metadata"].get("deletionTimestamp")]

    def oom_killed(self) -> list[str]:
        """Operator containers the kernel killed for their memory limit (now or at their last restart)."""
        def reasons(c: dict[str, Any]) -> set[str | None]:
            return {((c.get(k) or {}).get("terminated") or {}).get("reason") for k in ("state", "lastState")}

        return [f"{p['metadata']['name']}/{c['name']}" for p in self.pods()
                for c in (p.get("status") or {}).get("containerStatuses") or [] if "OOMKilled" in reasons(c)]

    @property
    def liveness(self) -> str:
        """The health endpoint on the pod's address, which this machine reaches over the node's bridge."""
        pod = wait_until("a running operator pod", lambda: next(
            (p for p in self.pods() if p["status"].get("podIP")), None), timeout=60)
        return f"http://{pod['status']['podIP']}:{HEALTH_PORT}/healthz"

    def leader(self) -> str | None:
        """The pod holding the leader Lease (its identity is the pod name, then _ and a random suffix)."""
        lease = self.kube.read(f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{LEADER_LEASE}")
        if lease is None:
            return None
        holder = (lease.get("spec") or {}).get("holderIdentity") or ""
        pod = holder.rpartition("_")[0]
        return pod if pod in {p["metadata"]["name"] for p in self.pods()} else None

    def kill_leader(self) -> str:
        """The leader's pod force-deleted as a node loss would (no grace, no Lease release); the Deployment
        replaces it, and the standby takes over. Returns the killed pod's name."""
        pod = wait_until("a leader", self.leader, timeout=60)
        self._earlier_logs += self.kube.logs(self.namespace, pod)
        self.kubectl("delete", "pod", pod, "--grace-period=0", "--force", "--wait=false")
        return pod

    def metrics_url(self, pod: dict[str, Any]) -> str:
        return f"http://{pod['status']['podIP']}:{METRICS_PORT}/metrics"

    def kill(self) -> None:
        """As a crash of every replica would: no grace, no cleanup; the Deployment is scaled to 0 so it
        stays down (the leader with the others).

        On the local node the operator's processes are SIGKILLed first: a force-deleted pod's API object
        goes at once but its container lives a moment longer, long enough to act on what a test changes
        right after "the operator is down" (it created the next Job in one run)."""
        self._earlier_logs += self.logs()
        self.kubectl("scale", self.deployment, "--replicas=0")
        if self.kube.local is not None:
            _sigkill(self.pids())
        self.kubectl("delete", "pods", "-l", f"app.kubernetes.io/instance={self.release}", "--grace-period=0",
                     "--force", "--wait=false")
        wait_until("the operator pod gone", lambda: not self.pods(), timeout=60)
        if self.kube.local is not None:
            wait_until("no operator process left on the node", lambda: not _sigkill(self.pids()), timeout=30)

    def start(self) -> None:
        self.kubectl("scale", self.deployment, f"--replicas={REPLICAS}")
        self.kubectl("rollout", "status", self.deployment, "--timeout=120s", timeout=150)

    def stop(self) -> None:
        self.kube.helm("uninstall", self.release, "-n", self.namespace, "--wait", check=False)
        self.kube.kubectl("delete", "namespace", *self.pool, "--wait=false", "--ignore-not-found", check=False)

    def pids(self) -> list[int]:
        """This release's processes on the node: `schemagate operator` watching its namespaces (its argv
        names them), not another release's."""
        watching = f"--namespace={self.pool[0]}".encode()
        return node_pids(lambda argv: len(argv) > 2 and argv[1].endswith(b"/schemagate") and argv[2] == b"operator"
                         and watching in argv)

    def logs(self) -> str:
        """Every line the operator logged this session, from every replica and from killed pods too."""
        current = "".join(self.kube.logs(self.namespace, p["metadata"]["name"]) for p in self.pods())
        return self._earlier_logs + current

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])


def node_pids(match: Callable[[list[bytes]], bool]) -> list[int]:
    """The processes on this node (the local cluster's containers run here) whose argv `match` accepts."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if match(argv):
            found.append(int(entry.name))
    return found


def _sigkill(pids: list[int]) -> list[int]:
    """SIGKILL each; returns those that were still there."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive


def install_crds(kube: Kube) -> None:
    kube.kubectl("apply", "-f", str(REPO / "crds"))
    kube.kubectl("wait", "--for=condition=Established", "crd/schemamigrations.schemagate.io",
                 "crd/schemamigrationsets.schemagate.io", "--timeout=60s")


@pytest.fixture(scope="session")
def crd(kube: Kube, request: pytest.FixtureRequest) -> None:
    from shared_cluster import ask, broker_dir

    broker = broker_dir(request.config)
    if broker is None:
        install_crds(kube)
    else:
        ask(broker, "operator")  # the CRDs come with it, installed once for every worker


@pytest.fixture(scope="session")
def operator(kube: Kube, crd: None, request: pytest.FixtureRequest) -> Iterator[Operator]:
    from shared_cluster import broker_dir

    broker = broker_dir(request.config)
    if broker is not None:  # installed by the controller's broker, uninstalled by it at the session's end
        yield Operator(kube, broker)
        return
    op = Operator(kube)
    op.install()
    yield op
    op.stop()


@pytest.fixture
def own_operator(kube: Kube, crd: None) -> Iterator[Operator]:
    """An operator release of this test's own, installed as the session's is (two replicas, its own
    namespace, watching namespaces of its own): for a test that kills the operator or its leader, or takes
    away its admission policy. The release every other test shares keeps running meanwhile, so such a test
    shares the cluster instead of holding it alone (tests/shared_cluster.py)."""
    tag = uuid.uuid4().hex[:6]
    op = Operator(kube, release=f"own-{tag}", namespace=f"own-{tag}", pool=[f"own-{tag}-app-{i}" for i in range(2)])
    try:
        op.install()
        yield op
    finally:
        op.stop()
        kube.kubectl("delete", "namespace", op.namespace, "--wait=false", "--ignore-not-found", check=False)


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
        found = self.kube.read(f"/apis/schemagate.io/v1alpha1/namespaces/{self.namespace}/schemamigrations/{name}")
        if found is None:
            pytest.fail(f"SchemaMigration {self.namespace}/{name} not found")
        return found  # type: ignore[no-any-return]

    def status(self, name: str = "app") -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def last_job(self, name: str = "app", timeout: float = 30) -> dict[str, Any]:
        """status.lastJob, once the run is recorded: Ready says the database reached the target, which can be
        a moment before the Job controller marks the Job complete (and before its pod's status says the
        container ended, so `kubectl logs job/…` would still answer "waiting to start")."""
        return self.wait_for(name, f"{name}: the run recorded in status.lastJob",  # type: ignore[no-any-return]
                             lambda: self.status(name).get("lastJob"), timeout)

    def condition(self, ctype: str, name: str = "app") -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == ctype), {})

    def wait_condition(self, ctype: str, status: str, reason: str | None = None, name: str = "app",
                       timeout: float = 90) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            c = self.condition(ctype, name)
            ok = c.get("status") == status and (reason is None or c.get("reason") == reason)
            return c if ok else None

        return self.wait_for(name, f"{name}: {ctype}={status} {reason or ''}", probe, timeout)

    def wait_ready(self, version: int, name: str = "app", timeout: float = 90) -> dict[str, Any]:
        """Ready=True at `version`, CURRENT = TARGET, as `kubectl get smig` shows it."""
        def probe() -> dict[str, Any] | None:
            status = self.status(name)
            ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
            ok = (ready.get("status"), ready.get("reason"), status.get("currentVersion"), status.get("targetVersion"),
                  status.get("phase")) == ("True", "UpToDate", version, version, "Ready")
            return status if ok else None

        return self.wait_for(name, f"{name}: Ready at version {version}", probe, timeout)

    def wait_for(self, name: str, what: str, probe: Any, timeout: float) -> Any:
        """wait_until, printing the object's status and the operator's log when it times out."""
        try:
            return wait_until(what, probe, timeout=timeout)
        except pytest.fail.Exception:
            print(f"--- status of {name}:\n{json.dumps(self.status(name), indent=1)}\n--- operator log:\n"
                  f"{self.operator.tail()}")
            raise

    def jobs(self, name: str = "app") -> list[dict[str, Any]]:
        return self.kube.read(f"/apis/batch/v1/namespaces/{self.namespace}/jobs",  # type: ignore[no-any-return]
                              labelSelector=f"schemagate.io/migration={name}")["items"]

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
def app_namespace(kube: Kube, operator: Operator) -> Iterator[str]:
    """A fresh namespace the operator acts in (one of the pool its chart names), cleared after the test;
    all are deleted with the operator at the end of the session."""
    name = operator.take_namespace()
    yield name
    operator.clear_namespace(name)


@pytest.fixture
def app(kube: Kube, app_namespace: str, operator: Operator, database_url: str) -> App:
    return App(kube, app_namespace, operator, database_url)


@pytest.fixture
def own_app(kube: Kube, own_operator: Operator, database_url: str) -> App:
    """`app`, in a namespace of a release of its own (`own_operator`); deleted with that release."""
    return App(kube, own_operator.take_namespace(), own_operator, database_url)


__all__ = ["App", "Operator", "wait_until"]
