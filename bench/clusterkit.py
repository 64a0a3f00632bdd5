"""What the cluster benches (operator_scale.py, fleet.py) share: kubectl and helm, the chart installed into a
namespace of its own, the leader pod's RSS and CPU read from /proc inside it, the apiserver requests the
operator made (counted by a FlowSchema of its own), and PostgreSQL's session count.

Runs against $KUBECONFIG (the dev cluster: hack/cluster up; eval "$(hack/cluster env)"). Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import re
import subprocess
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
LEADER_LEASE = "schemagate-operator-leader"
FLOW_SCHEMA = "bench-schemagate-operator"

# Run inside the operator's container: the sum over its processes (the entrypoint may fork).
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


def apply(*docs: dict[str, Any], timeout: float = 300) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
            input="\n---\n".join(json.dumps(d) for d in docs), timeout=timeout)


def wait(what: str, probe: Any, timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


class Operator:
    """The chart installed as `release` in `namespace`."""

    def __init__(self, release: str, namespace: str):
        self.release, self.namespace = release, namespace

    @property
    def service_account(self) -> str:
        return f"{self.release}-schemagate"

    def leader_pod(self) -> str:
        def holder() -> str | None:
            out = kubectl("-n", self.namespace, "get", "lease", LEADER_LEASE, "-o", "json", check=False)
            name = (json.loads(out).get("spec") or {}).get("holderIdentity", "") if out else ""
            return name.rpartition("_")[0] or None
        return str(wait("a leader", holder, 120))

    def sample(self) -> tuple[int, int, int]:
        """(RSS KiB, CPU ticks, ticks per second) of the leader's processes."""
        out = kubectl("-n", self.namespace, "exec", self.leader_pod(), "--", "python3", "-c", SAMPLE)
        rss, ticks, hz = (int(x) for x in out.split())
        return rss, ticks, hz

    def api_requests(self) -> int:
        """Requests the operator's ServiceAccount made so far (the apiserver's APF counter, through our
        FlowSchema): any replica's, so the standby's watches count too."""
        metrics = kubectl("get", "--raw", "/metrics", timeout=60)
        pattern = re.compile(r'^apiserver_flowcontrol_dispatched_requests_total\{[^}]*flow_schema="'
                             + FLOW_SCHEMA + r'"[^}]*\} (\S+)$', re.M)
        return int(sum(float(v) for v in pattern.findall(metrics)))

    def reconciles(self) -> int:
        """Reconciles the leader ran, from its own /metrics."""
        out = kubectl("-n", self.namespace, "exec", self.leader_pod(), "--", "python3", "-c",
                      "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8081/metrics').read()"
                      ".decode())", check=False)
        found = re.findall(r"^schemagate_reconcile_duration_seconds_count\{[^}]*\} (\S+)$", out, re.M)
        return int(sum(float(v) for v in found))

    def flow_schema(self) -> dict[str, Any]:
        return {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
                "metadata": {"name": FLOW_SCHEMA},
                "spec": {"priorityLevelConfiguration": {"name": "workload-high"}, "matchingPrecedence": 500,
                         "distinguisherMethod": {"type": "ByUser"},
                         "rules": [{"subjects": [{"kind": "ServiceAccount", "serviceAccount": {
                             "name": self.service_account, "namespace": self.namespace}}],
                             "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                                "namespaces": ["*"], "clusterScope": True}],
                             "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}}


@contextlib.contextmanager
def installed(release: str, namespace: str, watch: list[str], image: str,
              sets: Sequence[str] = ()) -> Iterator[Operator]:
    """The chart installed (namespaces created); everything removed on exit, whatever happened."""
    op = Operator(release, namespace)
    repository, _, tag = image.rpartition(":")
    for ns in watch:
        kubectl("create", "namespace", ns, check=False)
    try:
        kubectl("apply", "-f", str(REPO / "crds"))
        apply(op.flow_schema())
        subprocess.run(["helm", "upgrade", "--install", release, str(REPO / "charts" / "schemagate"), "-n", namespace,
                        "--create-namespace", "--wait", "--timeout=180s",
                        "--set", f"watch.namespaces={{{','.join(watch)}}}", "--set", "rbac.secrets=namespace",
                        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                        *[a for s in sets for a in ("--set", s)]],
                       check=True, capture_output=True, text=True, timeout=300)
        op.leader_pod()
        yield op
    finally:
        subprocess.run(["helm", "uninstall", release, "-n", namespace, "--wait"], capture_output=True, timeout=300)
        kubectl("delete", "flowschema", FLOW_SCHEMA, "--ignore-not-found", check=False)
        kubectl("delete", "namespace", *watch, namespace, "--ignore-not-found", "--wait=true", check=False,
                timeout=900)


def sessions(pg: Any, like: str) -> int:
    """Sessions ever opened on the databases whose name is LIKE `like` (PostgreSQL ≥ 14 counts them)."""
    import psycopg

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(sum(sessions), 0) FROM pg_stat_database WHERE datname LIKE %s",
                           (like,)).fetchone()
    return int(row[0]) if row else 0


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile by nearest rank (no interpolation: the figures are a few hundred samples)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def common_arguments(ap: argparse.ArgumentParser, idle: float = 120, timeout: float = 1800) -> None:
    """The options both cluster benches take."""
    ap.add_argument("--idle", type=float, default=idle, help="seconds of idle measurement")
    ap.add_argument("--timeout", type=float, default=timeout, help="upper bound of the rollout")
    ap.add_argument("--image", default="localhost/schemagate:dev")
    ap.add_argument("--settle", type=float, default=30, help="seconds between Ready and the idle measurement")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where the JSON result goes")


def kubeconfig_given() -> bool:
    if os.environ.get("KUBECONFIG"):
        return True
    print("KUBECONFIG is not set: start the dev cluster (hack/cluster up; eval \"$(hack/cluster env)\")",
          file=sys.stderr)
    return False


def config_server_migrations() -> tuple[dict[str, str], int]:
    """migrations/ as ConfigMap data, and its newest version."""
    files = {p.name: p.read_text() for p in sorted((REPO / "migrations").glob("*.sql"))}
    return files, max(int(name.split("_")[0]) for name in files)


def write_result(out: Path, prefix: str, result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=1))
    path = out / f"{prefix}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}", file=sys.stderr)
