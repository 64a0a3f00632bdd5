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
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO)]

from devenv.postgres import running_postgres  # noqa: E402

APP_NS, OPS_NS, RELEASE = "bench-fleet", "bench-fleet-ops", "bench"
LABEL = "bench.schemagate.io/fleet"
SAMPLE = r"""
import os
rss = ticks = 0
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        status = open(f'/proc/{pid}/status').read()
        stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    except OSError:
        continue
    rss += next((int(l.split()[1]) for l in status.splitlines() if l.startswith('VmRSS:')), 0)
    ticks += int(stat[11]) + int(stat[12])
print(rss, ticks, os.sysconf('SC_CLK_TCK'))
"""


def kubectl(*args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
    proc = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def apply(*docs: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))


def helm(*args: str) -> None:
    subprocess.run(["helm", *args], check=True, capture_output=True, text=True, timeout=300)


def wait(what: str, probe: Any, timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextlib.contextmanager
def installed(image: str) -> Iterator[None]:
    repository, _, tag = image.rpartition(":")
    kubectl("create", "namespace", APP_NS, check=False)
    try:
        helm("upgrade", "--install", RELEASE, str(REPO / "charts" / "schemagate"), "-n", OPS_NS, "--create-namespace",
             "--wait", "--timeout=180s", "--set", f"watch.namespaces={{{APP_NS}}}", "--set", "rbac.secrets=namespace",
             "--set", "rbac.listSecrets=true", "--set", f"image.repository={repository}", "--set", f"image.tag={tag}")
        kubectl("apply", "-f", str(REPO / "crds"))
        yield
    finally:
        subprocess.run(["helm", "uninstall", RELEASE, "-n", OPS_NS, "--wait"], capture_output=True, timeout=300)
        kubectl("delete", "namespace", APP_NS, OPS_NS, "--ignore-not-found", "--wait=true", check=False, timeout=600)


def operator_sample() -> tuple[int, int, int]:
    out = kubectl("-n", OPS_NS, "exec", f"deploy/{RELEASE}-schemagate", "--", "python3", "-c", SAMPLE)
    rss, ticks, hz = (int(x) for x in out.split())
    return rss, ticks, hz


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--databases", type=int, default=200)
    ap.add_argument("--max-parallel", type=int, default=10)
    ap.add_argument("--canary", type=int, default=0, help="strategy.canary.count")
    ap.add_argument("--idle", type=float, default=120, help="seconds of idle CPU measurement")
    ap.add_argument("--timeout", type=float, default=3600, help="upper bound of the rollout")
    ap.add_argument("--image", default="localhost/schemagate:dev")
    args = ap.parse_args(argv)
    if not os.environ.get("KUBECONFIG"):
        print("KUBECONFIG is not set: start the dev cluster (hack/cluster up; eval \"$(hack/cluster env)\")",
              file=sys.stderr)
        return 2

    files = {p.name: p.read_text() for p in sorted((REPO / "migrations").glob("*.sql"))}
    newest = max(int(name.split("_")[0]) for name in files)
    result: dict[str, Any] = {"databases": args.databases, "maxParallel": args.max_parallel, "canary": args.canary,
                              "migrations": len(files), "target": newest,
                              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    with running_postgres() as pg, installed(args.image):
        names = [f"tenant-{k:03d}" for k in range(args.databases)]
        secrets = []
        for name in names:
            url = pg.create_database(name.replace("-", "_"))
            secrets.append({"apiVersion": "v1", "kind": "Secret", "metadata": {
                "name": name, "namespace": APP_NS, "labels": {LABEL: "yes"}}, "stringData": {"url": url}})
        apply(*secrets, {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "cs-migrations", "namespace": APP_NS}, "data": files})
        _, idle_ticks_before, hz = operator_sample()
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
        _, ticks_rollout, _ = operator_sample()
        result["rollout_cpu_seconds"] = round((ticks_rollout - idle_ticks_before) / hz, 1)
        children = json.loads(kubectl("-n", APP_NS, "get", "smig", "-l", "schemagate.io/set=cs", "-o", "json"))
        durations = [c["status"]["lastJob"].get("durationSeconds") for c in children["items"]
                     if (c.get("status") or {}).get("lastJob")]
        durations = [d for d in durations if isinstance(d, (int, float))]
        result["job_seconds"] = {"median": statistics.median(durations) if durations else None,
                                 "max": max(durations) if durations else None, "count": len(durations)}
        result["status"] = {k: status.get(k) for k in ("databases", "ready", "failed", "lowestVersion",
                                                         "highestVersion", "targetVersion")}

        time.sleep(30)  # let the last child events and Job TTL bookkeeping settle
        rss0, t0, _ = operator_sample()
        time.sleep(args.idle)
        rss1, t1, _ = operator_sample()
        result["idle"] = {"seconds": args.idle, "cpu_percent": round(100 * (t1 - t0) / hz / args.idle, 2),
                          "rss_mib": round(max(rss0, rss1) / 1024, 1)}

    print(json.dumps(result, indent=1))
    out = BENCH / "results" / f"fleet-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
