"""Measure a SchemaMigrationSet of N databases on one PostgreSQL server: time until all are Ready, and the
operator's RSS and CPU while idle with N children.

    hack/cluster up && eval "$(hack/cluster env)"      # the dev cluster (docs/dev-cluster.md), as root
    nice .venv/bin/python bench/fleet.py [--databases 200] [--max-parallel 10] [--canary 0] [--idle 120]

Not a test: it asserts nothing about time. On the running cluster ($KUBECONFIG) it starts its own
throw-away PostgreSQL (devenv.postgres; pods reach it on the node's address), creates N databases and one
labelled Secret each, installs the schemagate chart (image localhost/schemagate:dev, as hack/cluster up
builds it from this checkout; --image to change) into its own namespace watching one application
namespace, and applies config-server's migrations (migrations/) as a ConfigMap plus one set over the
Secrets. It records:

- ready_seconds: from the set's creation to `status.phase == Ready` with every database Ready;
- per-database Job durations (median, max) from the children's status.lastJob;
- the operator's RSS (sum over its container's processes) and CPU (utime+stime over `--idle` seconds),
  sampled through `kubectl exec` after the set became Ready, with the chart's default resync (30 s).

Prints the figures and writes them to bench/results/fleet-<UTC time>.json. Everything it made (chart,
namespaces, PostgreSQL) is removed on exit, whatever happened.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from clusterkit import (common_arguments, config_server_migrations, kubeconfig_given, write_result,
                        apply, installed, kubectl, wait)  # noqa: E402
from devenv.postgres import running_postgres  # noqa: E402

APP_NS, OPS_NS, RELEASE = "bench-fleet", "bench-fleet-ops", "bench"
LABEL = "bench.schemagate.io/fleet"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--databases", type=int, default=200)
    ap.add_argument("--max-parallel", type=int, default=10)
    ap.add_argument("--canary", type=int, default=0, help="strategy.canary.count")
    common_arguments(ap, idle=120, timeout=3600)
    args = ap.parse_args(argv)
    if not kubeconfig_given():
        return 2

    files, newest = config_server_migrations()
    result: dict[str, Any] = {"databases": args.databases, "maxParallel": args.max_parallel, "canary": args.canary,
                              "migrations": len(files), "target": newest,
                              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    with running_postgres() as pg, installed(RELEASE, OPS_NS, [APP_NS], args.image,
                                             sets=["rbac.listSecrets=true"]) as op:
        names = [f"tenant-{k:03d}" for k in range(args.databases)]
        secrets = []
        for name in names:
            url = pg.create_database(name.replace("-", "_"))
            secrets.append({"apiVersion": "v1", "kind": "Secret", "metadata": {
                "name": name, "namespace": APP_NS, "labels": {LABEL: "yes"}}, "stringData": {"url": url}})
        apply(*secrets, {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "cs-migrations", "namespace": APP_NS}, "data": files})
        _, idle_ticks_before, hz = op.sample()
        started = time.monotonic()
        apply({"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigrationSet",
               "metadata": {"name": "cs", "namespace": APP_NS},
               "spec": {"databases": {"selector": {"matchLabels": {LABEL: "yes"}}},
                        "source": {"configMaps": ["cs-migrations"]},
                        "strategy": {"canary": {"count": args.canary}, "maxParallel": args.max_parallel,
                                     "maxFailures": max(1, args.databases // 10)}}})

        def ready() -> dict[str, Any] | None:
            s = json.loads(kubectl("-n", APP_NS, "get", "smigset", "cs", "-o", "json")).get("status") or {}
            if s.get("phase") == "Halted":
                raise RuntimeError(f"the set halted: {json.dumps(s.get('failing'))}")
            return s if s.get("phase") == "Ready" and s.get("ready") == args.databases else None

        status = wait("the set Ready", ready, args.timeout, interval=2)
        result["ready_seconds"] = round(time.monotonic() - started, 1)
        _, ticks_rollout, _ = op.sample()
        result["rollout_cpu_seconds"] = round((ticks_rollout - idle_ticks_before) / hz, 1)
        def recorded() -> dict[str, Any] | None:
            # Ready comes with the database's version; each Job's record follows once it is Complete.
            found = json.loads(kubectl("-n", APP_NS, "get", "smig", "-l", "schemagate.io/set=cs", "-o", "json"))
            return found if all((c.get("status") or {}).get("lastJob") for c in found["items"]) else None

        children = wait("every child's Job recorded", recorded, 120, 1)
        durations = [c["status"]["lastJob"].get("durationSeconds") for c in children["items"]
                     if (c.get("status") or {}).get("lastJob")]
        durations = [d for d in durations if isinstance(d, (int, float))]
        result["job_seconds"] = {"median": statistics.median(durations) if durations else None,
                                 "max": max(durations) if durations else None, "count": len(durations)}
        result["status"] = {k: status.get(k) for k in ("databases", "ready", "failed", "lowestVersion",
                                                         "highestVersion", "targetVersion")}

        time.sleep(args.settle)  # let the last child events and Job TTL bookkeeping settle
        rss0, t0, _ = op.sample()
        time.sleep(args.idle)
        rss1, t1, _ = op.sample()
        result["idle"] = {"seconds": args.idle, "cpu_percent": round(100 * (t1 - t0) / hz / args.idle, 2),
                          "rss_mib": round(max(rss0, rss1) / 1024, 1)}

    write_result(args.out, "fleet", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
