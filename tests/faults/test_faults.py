"""Faults injected mid-run at a random point, each repeated 3 times, on the real node.

After each: every version row in goose_db_version has its effect (its table, its applied_log row) and no
effect lacks its row; nothing is applied twice; status converges to Ready at the newest version — by itself,
or after the one documented action (the retry annotation, docs/operator.md "Failures"); the time is recorded.
Keep the whole suite near 8 minutes: 30 short files per run, about 3 s of migrating.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import urllib.parse
from typing import Any

import psycopg
import pytest

from devenv import hostnet
from kube_fixtures import wait_until
from operator_fixtures import App, node_pids
from run_report import RUNS

pytestmark = pytest.mark.e2e

# Each fault at a random point, REPEAT times (the README's test command: 3).
REPEAT = int(os.environ.get("SCHEMAGATE_FAULT_REPEAT", "3"))
N = 30
# Stalled this long, without turning back, is what a person on call acts on (a Stalled object waits for them).
STALLED_SETTLE = 3.0


def files(n: int = N, first: int = 1, sleep: float = 0.1) -> dict[str, str]:
    out = {}
    for v in range(first, n + 1):
        create = "CREATE TABLE IF NOT EXISTS applied_log (version int NOT NULL);\n" if v == 1 else ""
        out[f"{v:05d}_t{v}.sql"] = (f"-- +goose Up\n{create}CREATE TABLE t{v} (id int);\n"
                                    f"INSERT INTO applied_log VALUES ({v});\nSELECT pg_sleep({sleep});\n"
                                    f"-- +goose Down\nDROP TABLE t{v};\n")
    return out


def check_invariants(url: str) -> tuple[bool, bool]:
    """(lost, double): a version row without its effects or an effect without its row; an effect twice."""
    with psycopg.connect(url) as conn:
        versions = [r[0] for r in conn.execute(
            "SELECT version_id FROM goose_db_version WHERE version_id > 0 AND is_applied ORDER BY id")]
        logged = [r[0] for r in conn.execute("SELECT version FROM applied_log ORDER BY version")] \
            if conn.execute("SELECT to_regclass('applied_log')").fetchone()[0] else []
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE tablename ~ '^t[0-9]+$'")}
    double = len(logged) != len(set(logged)) or len(versions) != len(set(versions))
    lost = set(versions) != set(logged) or {f"t{v}" for v in versions} != tables
    return lost, double


def running_pod(app: App, name: str = "app", timeout: float = 90) -> dict[str, Any]:
    import json

    def probe() -> dict[str, Any] | None:
        pods = app.kube.read(f"/api/v1/namespaces/{app.namespace}/pods",
                             labelSelector=f"schemagate.io/migration={name}")
        return next((p for p in pods["items"] if p["status"].get("phase") == "Running"), None)

    try:
        return wait_until(f"a running migration pod of {name}", probe, timeout=timeout)
    except pytest.fail.Exception as e:
        pods = json.loads(app.kubectl("get", "pods", "-o", "json").stdout)["items"]
        phases = {p["metadata"]["name"]: p["status"].get("phase") for p in pods}
        conditions = [(c["type"], c["status"], c.get("message")) for c in app.status(name).get("conditions") or []]
        operator = {p["metadata"]["name"]: [(c.get("restartCount"), c.get("ready")) for c in
                                            p["status"].get("containerStatuses") or []] for p in app.operator.pods()}
        pytest.fail(f"{e}; pods in {app.namespace}: {phases}; {name}'s conditions: {conditions}; operator pods "
                    f"(restarts, ready): {operator}; the operator's last lines:\n{app.operator.tail(30)}")


def runner_pids(namespace: str, job: str) -> list[int]:
    """The runner's processes on this node, found by the Lease holder (namespace/Job) in their command line:
    Jobs of other namespaces have the same name when they run the same files."""
    holder = f"{namespace}/{job}".encode()
    return node_pids(lambda argv: b"migrate" in argv and any(part.endswith(holder) for part in argv))


def converge(app: App, names: list[str], version: int, started: float, url: str) -> tuple[str, float | None]:
    """Ready by itself, else after the documented action (retry) once status asks for it, else not at all.

    A SchemaMigration that is Stalled waits for a person (docs/operator.md "Failures"): once it has stayed
    Stalled for STALLED_SETTLE seconds the action is taken at once, as an operator on call would. One that is
    neither Ready nor Stalled after 60 s has not converged by itself and gets the action too."""
    def condition(name: str, ctype: str) -> dict[str, Any]:
        s = app.status(name)
        return next((c for c in s.get("conditions") or [] if c["type"] == ctype), {})

    def ready(name: str) -> bool:
        return condition(name, "Ready").get("status") == "True" and app.status(name).get("currentVersion") == version

    stalled_since: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(ready(n) for n in names):
            return "itself", round(time.monotonic() - started, 1)
        now = time.monotonic()
        for n in names:
            if condition(n, "Stalled").get("status") == "True":
                stalled_since.setdefault(n, now)
            else:
                stalled_since.pop(n, None)
        if stalled_since and all(now - t >= STALLED_SETTLE for t in stalled_since.values()) \
                and all(ready(n) or n in stalled_since for n in names):
            break
        time.sleep(0.5)
    for n in names:
        if not ready(n):
            app.kubectl("annotate", "smig", n, f"schemagate.io/retry=r{int(time.time())}", "--overwrite")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if all(ready(n) for n in names):
            return "action", round(time.monotonic() - started, 1)
        time.sleep(0.5)
    for n in names:
        print(f"--- {n} did not converge: {app.status(n)}")
    return "no", None


def record(fault: str, app: App, names: list[str], version: int, started: float) -> None:
    recovered, seconds = converge(app, names, version, started, app.database_url)
    lost, double = check_invariants(app.database_url)
    for n in names:
        last = app.status(n).get("lastJob") or {}
        if last.get("outcome") == "Failed":  # what a person reads: it names the fault
            print(f"{fault}: {n} lastJob: {last.get('reason')}: {last.get('message')}")
    RUNS.append({"fault": fault, "recovered": recovered, "seconds": seconds, "lost": lost, "double": double})
    assert not lost and not double, (fault, lost, double)
    assert recovered != "no", f"{fault}: status never converged"
    # The chart's memory limit holds through the fault: a replica reconnecting every watch stream at once
    # (after an apiserver restart) was OOMKilled at 256Mi, and the takeover then waited for its restart.
    assert not app.operator.oom_killed(), f"{fault}: operator OOMKilled: {app.operator.oom_killed()}"


def start(app: App, name: str = "app", n: int = N, *, sleep: float = 0.1, url: str | None = None) -> float:
    """The Secret (`url`, else the database's own), the files (`sleep` seconds each), the SchemaMigration."""
    app.secret(url or app.database_url)
    app.migrations(files(n, sleep=sleep), name=f"{name}-migrations")
    app.schemamigration(name, config_maps=(f"{name}-migrations",))
    return time.monotonic()


@pytest.mark.parametrize("rep", range(REPEAT))
def test_runner_pod_deleted_with_no_grace(app: App, rep: int) -> None:
    started = start(app)
    pod = running_pod(app)
    time.sleep(random.uniform(0.3, 2.5))
    app.kubectl("delete", "pod", pod["metadata"]["name"], "--grace-period=0", "--force", "--wait=false")
    record("runner pod deleted (grace 0)", app, ["app"], N, started)


@pytest.mark.parametrize("rep", range(REPEAT))
def test_runner_container_sigkilled(app: App, rep: int) -> None:
    started = start(app)
    pod = running_pod(app)
    job = pod["metadata"]["labels"]["job-name"]
    pids = wait_until(f"the runner process of {job}", lambda: runner_pids(app.namespace, job) or None, timeout=30)
    time.sleep(random.uniform(0.3, 2.5))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # finished first: the run just converges by itself
    record("runner SIGKILL (/proc)", app, ["app"], N, started)


@pytest.mark.parametrize("rep", range(REPEAT))
def test_operator_killed_and_restarted(own_app: App, rep: int) -> None:
    """Every replica of an operator release of the test's own killed and kept down a moment (the one the
    other tests share keeps running)."""
    app = own_app
    started = start(app)
    running_pod(app)
    time.sleep(random.uniform(0.3, 2.5))
    app.operator.kill()
    time.sleep(random.uniform(0.5, 3))
    app.operator.start()
    record("operator killed, restarted", app, ["app"], N, started)


@pytest.mark.parametrize("rep", range(REPEAT))
def test_postgres_restarted(app: App, postgres_server: Any, rep: int) -> None:
    if not hasattr(postgres_server, "datadir"):
        pytest.fail("the PostgreSQL restart fault needs the session's own server (unset SCHEMAGATE_TEST_PG_URL)")
    started = start(app)
    running_pod(app)
    time.sleep(random.uniform(0.3, 2.5))
    # -l: the restarted server writes to its log, not to our pipe (which would then never close).
    argv = [str(postgres_server.bindir / "pg_ctl"), "-D", str(postgres_server.datadir), "-m", "fast", "-w",
            "-l", str(postgres_server.datadir.parent / "server.log"), "restart"]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)
    record("PostgreSQL restarted", app, ["app"], N, started)


def _shared_database(app: App, count: int) -> tuple[list[str], float]:
    """`count` SchemaMigrations on one database, files 1-20, 1-25, ..., the last 1-30, applied together."""
    app.secret(app.database_url)
    names = [f"app{k}" for k in range(count)]
    for k, name in enumerate(names):
        n = N if k == count - 1 else 20 + (k * 10) // max(1, count - 1)
        app.migrations(files(n), name=f"{name}-migrations")
    started = time.monotonic()
    app.apply(*[{"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration", "metadata": {"name": n},
                 "spec": {"database": {"secretRef": {"name": "app-db"}}, "source": {"configMaps": [f"{n}-migrations"]}}}
                for n in names])
    return names, started


def _ready_or_ahead(app: App, names: list[str], started: float) -> tuple[str, float | None]:
    def ok(name: str) -> bool:
        s = app.status(name)
        c = next((c for c in s.get("conditions") or [] if c["type"] == "Ready"), {})
        return c.get("status") == "True" and s.get("currentVersion") == N

    try:
        wait_until("every SchemaMigration Ready at the newest version", lambda: all(ok(n) for n in names) or None,
                   timeout=120)
        return "itself", round(time.monotonic() - started, 1)
    except pytest.fail.Exception:
        for n in names:
            print(f"--- {n}: {app.status(n)}")
        return "no", None


@pytest.mark.parametrize("count", [2, 5])
@pytest.mark.parametrize("rep", range(REPEAT))
def test_schemamigrations_on_one_database(app: App, count: int, rep: int) -> None:
    names, started = _shared_database(app, count)
    stalled = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # watch while they run: never Stalled, the shorter ones AheadOfSource
        for n in names:
            c = app.condition("Stalled", n)
            if c.get("status") == "True":
                stalled.append((n, c.get("reason"), c.get("message")))
        if all(app.condition("Ready", n).get("status") == "True" for n in names):
            break
        time.sleep(0.5)
    recovered, seconds = _ready_or_ahead(app, names, started)
    lost, double = check_invariants(app.database_url)
    RUNS.append({"fault": f"{count} SchemaMigrations, one db", "recovered": recovered, "seconds": seconds,
                 "lost": lost, "double": double})
    assert not lost and not double
    assert not stalled, stalled
    assert recovered == "itself"
    reasons = {app.condition("Ready", n).get("reason") for n in names[:-1]}
    assert reasons <= {"AheadOfSource", "UpToDate"}, reasons


# What a stopped apiserver must outlast: the migration Lease (spec.lock.leaseDurationSeconds, default 15) and
# the operator's leader Lease (the chart's leaderElection.leaseDurationSeconds, 15).
MIGRATION_LEASE_SECONDS = 15
LEADER_LEASE_SECONDS = 15
APISERVER_DOWN = max(MIGRATION_LEASE_SECONDS, LEADER_LEASE_SECONDS) + 5
# Slow files for the faults that must find the runner still at work when they end: 30 files of 0.7 s.
SLOW = 0.7


@pytest.mark.exclusive
@pytest.mark.parametrize("rep", range(REPEAT))
def test_apiserver_stopped_past_the_leases_and_restarted(app: App, rep: int) -> None:
    """kube-apiserver stopped (SIGTERM, not paused) while the Job runs, for longer than both Leases, then
    started with the same argv; the runner cannot renew its Lease nor the operator its leadership meanwhile."""
    cluster = app.kube.local_cluster()
    started = start(app, sleep=SLOW)
    running_pod(app)
    time.sleep(random.uniform(0.3, 2.5))
    cluster.stop_component("kube-apiserver")
    time.sleep(APISERVER_DOWN + random.uniform(0, 3))
    cluster.start_component("kube-apiserver")  # returns once /readyz answers 200
    try:
        record("apiserver down > leases", app, ["app"], N, started)
    finally:
        fresh_watches(app, cluster)


def fresh_watches(app: App, cluster: Any) -> None:
    """After an apiserver outage every client's watches back off (client-go's reflectors: to 30 s, jittered
    to 60) and come back one by one, so the next test inherited this one's fault: its Job's pod waited up
    to 53 s to be created (kube-controller-manager) and sat Pending 39-46 s (the kubelet had not seen it).
    The clients of the cluster are restarted with fresh watches: kube-controller-manager and kube-scheduler
    as a kubeadm control plane's are (their leader Leases lost, they exit and are restarted), the kubelet as
    the node-restart fault does (its containers run on), kube-proxy and CoreDNS as their Services' watchers."""
    cluster.restart("kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet")
    wait_until("the node Ready again", lambda: app.kube.kubectl(
        "get", "node", "-o", "jsonpath={.items[0].status.conditions[?(@.type=='Ready')].status}",
        check=False).stdout.strip() == "True", timeout=90)
    app.kube.kubectl("-n", "kube-system", "rollout", "restart", "deployment/coredns")
    app.kube.kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=90s", timeout=120)


# The runner's lock_timeout (spec.lock.lockTimeout's default, passed as --lock-timeout): the cut outlasts it.
LOCK_TIMEOUT_SECONDS = 10


@pytest.fixture(scope="module")
def toxiproxy_server() -> Any:
    """toxiproxy on the node's address: pods may reach this machine there (devenv/hostnet.py: the egress
    guard drops only what leaves through another interface), so the Job's connection goes through it."""
    from devenv import hostnet, toxiproxy

    binary = toxiproxy.default_binary()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"toxiproxy is not at {binary}; run through hack/test.sh (hack/build-toxiproxy.sh)")
    with toxiproxy.running_server(binary, host=hostnet.NODE_IP) as server:
        yield server


@pytest.mark.parametrize("rep", range(REPEAT))
def test_database_network_cut_past_lock_timeout(app: App, toxiproxy_server: Any, rep: int) -> None:
    """The Secret's URL goes through a toxiproxy; mid-run the link is cut for longer than lock_timeout, then
    restored: the proxy disabled, its connections closed and new ones refused.

    Not here: a cut that drops every byte and closes nothing. Through toxiproxy that is not a real one (its
    own TCP stack answers the runner's keepalives, and removing its `timeout` toxic closes the connections,
    so the end of the cut looks like this case); it wants packets dropped on the pod's path (docs/operator.md
    "Known weaknesses")."""
    parts = urllib.parse.urlsplit(app.database_url)
    proxy = toxiproxy_server.proxy(f"pg-{app.namespace}", f"{parts.hostname}:{parts.port}",
                                   listen=f"{hostnet.NODE_IP}:0")
    userinfo = parts.netloc.rsplit("@", 1)[0]
    proxied = urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@{proxy.host}:{proxy.port}"))
    try:
        started = start(app, sleep=0.3, url=proxied)
        running_pod(app)
        time.sleep(random.uniform(0.5, 3))
        proxy.set_enabled(False)
        time.sleep(LOCK_TIMEOUT_SECONDS + random.uniform(2, 5))
        proxy.set_enabled(True)
        record("db network cut", app, ["app"], N, started)
    finally:
        toxiproxy_server.delete(proxy.name)


@pytest.mark.exclusive
@pytest.mark.parametrize("rep", range(REPEAT))
def test_node_restarted(app: App, rep: int) -> None:
    """kubelet and containerd stopped (SIGTERM, as a node's restart of its services) while the Job runs,
    down a few seconds, started again with the same argv; the shims (and so the containers) may survive."""
    cluster = app.kube.local_cluster()
    started = start(app, sleep=SLOW)
    running_pod(app)
    time.sleep(random.uniform(0.3, 2.5))
    cluster.restart("kubelet", "containerd", down=random.uniform(2, 6))
    wait_until("the node Ready again", lambda: app.kube.kubectl(
        "get", "node", "-o", "jsonpath={.items[0].status.conditions[?(@.type=='Ready')].status}",
        check=False).stdout.strip() == "True", timeout=90)
    record("node restart (kubelet+ctrd)", app, ["app"], N, started)
