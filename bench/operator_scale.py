"""The operator at scale: S SchemaMigrations (default 300) in N namespaces (default 30), each with its own
database on one PostgreSQL server, created at once; then idle; then one of them changing while the rest
are idle.

    hack/cluster up && eval "$(hack/cluster env)"      # the dev cluster (docs/dev-cluster.md), as root
    nice .venv/bin/python bench/operator_scale.py [--namespaces 30] [--per-namespace 10] [--idle 120] [--changes 3]

Not a test: it asserts nothing about time. On the running cluster ($KUBECONFIG) it starts its own
throw-away PostgreSQL (devenv.postgres; pods reach it on the node's address), installs the schemagate chart
with its defaults (two replicas, leader election, 30 s resync; image localhost/schemagate:dev as hack/cluster
up builds it, --image to change) watching the bench's namespaces, gives each namespace config-server's
migrations (migrations/) as a ConfigMap and each SchemaMigration a database and a Secret, and applies every
SchemaMigration in one request. Two watches (SchemaMigrations, migration Jobs) time every object by this
machine's clock. It reports:

- all Ready: seconds from the apply until every SchemaMigration is Ready at the newest version;
- per object, p50/p95/max: apply → Job created (the Job's ADDED event), Job created → Ready (its pod's
  start, the run, the operator reading the new version; Ready comes before the Job's Complete);
- the leader's RSS, peak (sampled every 5 s during the rollout) and steady (idle);
- while idle with S objects, per minute: the leader's CPU (% of one core), apiserver requests of the
  operator's ServiceAccount (a FlowSchema of the bench's own counts them), database sessions opened on the
  bench's databases (pg_stat_database.sessions), reconciles (the leader's /metrics);
- `--changes` times, one SchemaMigration given a new migration while the rest idle: apply → Job created,
  Job created → Ready, apply → Ready (does it wait behind a resync of all?).

Prints the figures and writes them to bench/results/operator-<UTC time>.json. Everything it made (chart,
namespaces, FlowSchema, PostgreSQL) is removed on exit, whatever happened. It needs the node to itself.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from clusterkit import (common_arguments, config_server_migrations, kubeconfig_given, write_result,
                        apply, installed, percentile, sessions, wait)  # noqa: E402
from devenv.postgres import running_postgres  # noqa: E402

OPS_NS, RELEASE = "bench-operator", "bench"
MANAGED_BY, OWNER = "app.kubernetes.io/managed-by=schemagate", "schemagate.io/migration"
EXTRA = ("-- +goose Up\nCREATE TABLE bench_change_{n} (id bigint PRIMARY KEY);\n"
         "-- +goose Down\nDROP TABLE bench_change_{n};\n")


class Clock:
    """When this machine first saw each SchemaMigration, its Job, the Job complete, and it Ready at the
    version it is waiting for; from two watches over all namespaces."""

    def __init__(self, namespaces: set[str]):
        from kubernetes import client, config

        self.api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
        self.custom, self.batch = client.CustomObjectsApi(self.api), client.BatchV1Api(self.api)
        self.namespaces = namespaces
        self.lock = threading.Lock()
        self.want: dict[tuple[str, str], int] = {}  # the version each object is waited at
        self.ready: dict[tuple[str, str], float] = {}
        # Jobs by (namespace, name): the same plan has the same Job name in every namespace.
        self.jobs: dict[tuple[str, str], tuple[tuple[str, str], float]] = {}  # Job → (owner, ADDED seen)
        self.done: dict[tuple[str, str], float] = {}  # Job → Complete seen
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._watch, args=(w,), daemon=True) for w in ("smig", "jobs")]

    def __enter__(self) -> Clock:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self.api.close()

    def expect(self, key: tuple[str, str], version: int) -> None:
        with self.lock:
            self.want[key] = version
            self.ready.pop(key, None)

    def _watch(self, what: str) -> None:
        from kubernetes import watch

        lister: Callable[..., Any]
        if what == "smig":
            def lister(**kw: Any) -> Any:
                return self.custom.list_cluster_custom_object("schemagate.io", "v1alpha1", "schemamigrations", **kw)
        else:
            def lister(**kw: Any) -> Any:
                return self.batch.list_job_for_all_namespaces(label_selector=MANAGED_BY, **kw)
        version = None
        while not self._stop.is_set():
            try:
                w = watch.Watch()
                for ev in w.stream(lister, resource_version=version, timeout_seconds=5, _preload_content=False):
                    obj = ev["raw_object"]
                    version = obj["metadata"].get("resourceVersion")
                    if obj["metadata"].get("namespace") in self.namespaces:
                        (self._on_smig if what == "smig" else self._on_job)(obj, time.monotonic())
                    if self._stop.is_set():
                        w.stop()
            except Exception as e:  # noqa: BLE001  a watch expires (410) and restarts from a list
                if "410" not in str(e):
                    self.errors.append(f"{what}: {e}")
                version = None
                time.sleep(0.2)

    def _on_smig(self, obj: dict[str, Any], now: float) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        status = obj.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        with self.lock:
            want = self.want.get(key)
            if want is not None and key not in self.ready and ready.get("status") == "True" \
                    and status.get("currentVersion") == want:
                self.ready[key] = now

    def _on_job(self, obj: dict[str, Any], now: float) -> None:
        meta = obj["metadata"]
        owner = (meta["namespace"], (meta.get("labels") or {}).get(OWNER, ""))
        complete = any(c.get("type") == "Complete" and c.get("status") == "True"
                       for c in (obj.get("status") or {}).get("conditions") or [])
        job = (meta["namespace"], meta["name"])
        with self.lock:
            self.jobs.setdefault(job, (owner, now))
            if complete:
                self.done.setdefault(job, now)

    def settled(self, keys: list[tuple[str, str]], applied: float) -> bool:
        """Every object has a Job created after `applied` that this machine saw complete: the database is
        at its version (Ready) a moment before the Job controller marks the Job Complete."""
        with self.lock:
            finished = {owner for name, (owner, t) in self.jobs.items() if t >= applied and name in self.done}
        return all(k in finished for k in keys)

    def spans(self, keys: list[tuple[str, str]], applied: float) -> dict[str, list[float]]:
        """Per object, for its first Job created after `applied`: apply → the Job's ADDED event, and the
        Job's ADDED → the object Ready at the version it was waited at (the pod's start, the run, and the
        operator reading the new version)."""
        created, to_ready = [], []
        with self.lock:
            for key in keys:
                jobs = sorted(t for owner, t in self.jobs.values() if owner == key and t >= applied)
                if not jobs:
                    continue
                created.append(jobs[0] - applied)
                if key in self.ready:
                    to_ready.append(self.ready[key] - jobs[0])
        return {"created": created, "to_ready": to_ready}


def figures(values: list[float]) -> dict[str, float | int | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)
    return {"count": len(values), "p50": r(percentile(values, 0.5)), "p95": r(percentile(values, 0.95)),
            "max": r(max(values) if values else None)}


def schemamigration(ns: str, name: str, configmap: str) -> dict[str, Any]:
    return {"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"database": {"secretRef": {"name": name, "key": "url"}}, "source": {"configMaps": [configmap]}}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--namespaces", type=int, default=30)
    ap.add_argument("--per-namespace", type=int, default=10)
    ap.add_argument("--changes", type=int, default=3, help="single-object changes timed while the rest idle")
    ap.add_argument("--set", action="append", default=[], metavar="VALUE",
                    help="a chart value, as helm --set takes it (repeatable); e.g. operator.fullResyncSeconds=0.001 "
                         "reconciles every object in full at every resync, as before the settled-object skip")
    common_arguments(ap, idle=120, timeout=1800)
    args = ap.parse_args(argv)
    if not kubeconfig_given():
        return 2

    files, newest = config_server_migrations()
    namespaces = [f"bench-op-{n:02d}" for n in range(args.namespaces)]
    keys = [(ns, f"app-{m:02d}") for ns in namespaces for m in range(args.per_namespace)]
    result: dict[str, Any] = {"schemamigrations": len(keys), "namespaces": len(namespaces), "target": newest,
                              "chart_values": args.set,
                              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    with running_postgres() as pg, installed(RELEASE, OPS_NS, namespaces, args.image, sets=args.set) as op, \
            Clock(set(namespaces)) as clock:
        docs: list[dict[str, Any]] = []
        for ns in namespaces:
            docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "migrations", "namespace": ns},
                         "data": files})
        for ns, name in keys:
            url = pg.create_database(f"bench_{ns}_{name}".replace("-", "_"))
            docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
                         "stringData": {"url": url}})
        apply(*docs)
        for key in keys:
            clock.expect(key, newest)

        peak = [0]
        sampling = threading.Event()

        def sample_rss() -> None:
            while not sampling.wait(5):
                try:
                    peak[0] = max(peak[0], op.sample()[0])
                except Exception:  # noqa: BLE001  a sample missed is a sample missed
                    pass

        sampler = threading.Thread(target=sample_rss, daemon=True)
        _, ticks0, hz = op.sample()
        api0 = op.api_requests()
        started = time.monotonic()
        apply(*[schemamigration(ns, name, "migrations") for ns, name in keys])
        result["apply_seconds"] = round(time.monotonic() - started, 2)
        sampler.start()
        wait("every SchemaMigration Ready", lambda: len(clock.ready) >= len(keys) or None, args.timeout, 1)
        result["all_ready_seconds"] = round(time.monotonic() - started, 1)
        wait("every Job seen Complete", lambda: clock.settled(keys, started), 120, 0.5)
        sampling.set()
        sampler.join(timeout=30)
        rss, ticks1, _ = op.sample()
        spans = clock.spans(keys, started)
        result["rollout"] = {"apply_to_job_created_s": figures(spans["created"]),
                             "job_created_to_ready_s": figures(spans["to_ready"]),
                             "leader_cpu_seconds": round((ticks1 - ticks0) / hz, 1),
                             "api_requests": op.api_requests() - api0,
                             "peak_rss_mib": round(max(peak[0], rss) / 1024, 1)}

        time.sleep(args.settle)  # the last status writes and child events settle
        like = "bench_bench_op_%"
        rss0, t0, _ = op.sample()
        api_before, sessions_before, reconciles_before = op.api_requests(), sessions(pg, like), op.reconciles()
        time.sleep(args.idle)
        rss1, t1, _ = op.sample()
        per_minute = 60 / args.idle
        result["idle"] = {
            "seconds": args.idle,
            "cpu_percent_of_one_core": round(100 * (t1 - t0) / hz / args.idle, 2),
            "steady_rss_mib": round(max(rss0, rss1) / 1024, 1),
            "api_requests_per_min": round((op.api_requests() - api_before) * per_minute, 1),
            "db_sessions_per_min": round((sessions(pg, like) - sessions_before) * per_minute, 1),
            "reconciles_per_min": round((op.reconciles() - reconciles_before) * per_minute, 1),
        }

        changes = []
        for n in range(args.changes):
            ns, name = keys[(n * 7919) % len(keys)]  # spread over namespaces
            configmap = f"changed-{n}"
            clock.expect((ns, name), newest + 1)
            apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": configmap, "namespace": ns},
                   "data": {**files, f"{newest + 1:05d}_bench_change.sql": EXTRA.format(n=n)}})
            applied = time.monotonic()
            apply(schemamigration(ns, name, configmap))
            wait(f"{ns}/{name} Ready at {newest + 1}", lambda k=(ns, name): k in clock.ready, 300, 0.1)
            one = clock.spans([(ns, name)], applied)
            changes.append({"object": f"{ns}/{name}",
                            "apply_to_job_created_s": round(one["created"][0], 2) if one["created"] else None,
                            "job_created_to_ready_s": round(one["to_ready"][0], 2) if one["to_ready"] else None,
                            "apply_to_ready_s": round(clock.ready[(ns, name)] - applied, 2)})
        result["one_change_among_idle"] = changes
        result["watch_errors"] = clock.errors[:5]

    write_result(args.out, "operator", result)
    print(table(result))
    return 0


def table(r: dict[str, Any]) -> str:
    """The figures bench/README.md reports, as a Markdown table."""
    ro, idle = r["rollout"], r["idle"]
    changes = r["one_change_among_idle"]

    def span(f: dict[str, Any]) -> str:
        return f"p50 {f['p50']} s, p95 {f['p95']} s, max {f['max']} s (n={f['count']})"

    rows = [
        (f"{r['schemamigrations']} SchemaMigrations in {r['namespaces']} namespaces all Ready",
         f"{r['all_ready_seconds']} s"),
        ("apply → Job created", span(ro["apply_to_job_created_s"])),
        ("Job created → Ready", span(ro["job_created_to_ready_s"])),
        ("leader RSS, peak / steady", f"{ro['peak_rss_mib']} / {idle['steady_rss_mib']} MiB"),
        ("leader CPU during the rollout", f"{ro['leader_cpu_seconds']} s"),
        ("idle: leader CPU", f"{idle['cpu_percent_of_one_core']} % of one core"),
        ("idle: apiserver requests (both replicas)", f"{idle['api_requests_per_min']} /min"),
        ("idle: database sessions", f"{idle['db_sessions_per_min']} /min"),
        ("idle: reconciles", f"{idle['reconciles_per_min']} /min"),
    ] + [(f"one change among the idle ({c['object']}): apply → Job created / → Ready",
          f"{c['apply_to_job_created_s']} s / {c['apply_to_ready_s']} s") for c in changes]
    return "\n".join(["| measure | figure |", "| --- | --- |", *(f"| {a} | {b} |" for a, b in rows)])


if __name__ == "__main__":
    raise SystemExit(main())
