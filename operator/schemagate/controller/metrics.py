"""Prometheus metrics of the operator (served on /metrics by every replica; docs/operations.md lists them).

Per-SchemaMigration gauges come from the status the leader just wrote, and are computed at scrape time
(a wait in seconds is current, not as old as the last reconcile). Counters and histograms count what the
reconcile saw happen: a Job started, a Job's outcome recorded in status.history (exactly once each, the
same as its Event). Labels are bounded: namespace, SchemaMigration or Deployment name, and reasons from
the fixed set the code defines; never a Job name or an error text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from schemagate.api import conditions as c
from schemagate.api import reasons
from schemagate.controller.loop import Key

OTHER_REASON = "Other"
# Every reason the code can put on a failed run: anything else (a termination message written by something
# that is not our runner) is counted as Other, so the label set stays bounded.
KNOWN_REASONS = reasons.ALL

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

LEADER = Gauge("schemagate_leader", "1 on the replica that holds the leader Lease and reconciles, else 0",
               registry=REGISTRY)
JOBS_STARTED = Counter("schemagate_migration_jobs_started", "Migration Jobs created",
                       ["namespace", "name"], registry=REGISTRY)
JOBS_SUCCEEDED = Counter("schemagate_migration_jobs_succeeded", "Migration Jobs that succeeded",
                         ["namespace", "name"], registry=REGISTRY)
JOBS_FAILED = Counter("schemagate_migration_jobs_failed", "Migration Jobs that failed, by reason",
                      ["namespace", "name", "reason"], registry=REGISTRY)
JOB_DURATION = Histogram("schemagate_migration_job_duration_seconds", "Run time of finished migration Jobs",
                         ["outcome"], buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
                         registry=REGISTRY)
LEASE_WAIT = Histogram("schemagate_lease_wait_seconds",
                       "How long a SchemaMigration waited for its database's Lease before its Job was created "
                       "(0: it was free)", buckets=(0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
                       registry=REGISTRY)
RESYNCS_SETTLED = Counter("schemagate_resyncs_settled", "Resync passes over a SchemaMigration at rest that found "
                          "nothing changed and so did not reconcile it (no Secret, Lease, Job or database read)",
                          registry=REGISTRY)
RECONCILE_DURATION = Histogram("schemagate_reconcile_duration_seconds", "Duration of one reconcile of one "
                               "SchemaMigration", ["result"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                               registry=REGISTRY)


def _epoch(rfc3339: Any) -> float | None:
    if not rfc3339:
        return None
    try:
        return datetime.fromisoformat(str(rfc3339).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def bounded_reason(reason: Any) -> str:
    return reason if isinstance(reason, str) and reason in KNOWN_REASONS else OTHER_REASON


@dataclass(frozen=True)
class Snapshot:
    """What the per-SchemaMigration gauges say, from one status (pure)."""

    current: int | None
    target: int | None
    pending: int | None
    ready: bool
    stalled: bool
    awaiting_approval: bool
    not_ready_since: float | None  # Ready's lastTransitionTime while Ready is not True
    last_success: float | None  # finishedAt of the newest succeeded run

    @classmethod
    def of(cls, status: Mapping[str, Any]) -> Snapshot:
        conds = status.get("conditions")
        ready = c.get(conds, c.READY) or {}
        stalled = c.get(conds, c.STALLED) or {}
        runs = [status.get("lastJob"), *(status.get("history") or [])]
        succeeded = [_epoch(r.get("finishedAt")) for r in runs
                     if isinstance(r, dict) and r.get("outcome") == "Succeeded"]
        times = [t for t in succeeded if t is not None]

        def number(key: str) -> int | None:
            v = status.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        is_ready = ready.get("status") == c.TRUE
        return cls(number("currentVersion"), number("targetVersion"), number("pending"), is_ready,
                   stalled.get("status") == c.TRUE, status.get("phase") == "AwaitingApproval",
                   None if is_ready else _epoch(ready.get("lastTransitionTime")), max(times) if times else None)


# The per-SchemaMigration gauges, in the order they are served: name, help, and the value a Snapshot gives
# (None: no sample for that SchemaMigration).
MIGRATION_GAUGES: tuple[tuple[str, str, Callable[[Snapshot], float | None]], ...] = (
    ("schemagate_migration_current_version", "The database's current schema version", lambda s: s.current),
    ("schemagate_migration_target_version", "The version the SchemaMigration brings the database to",
     lambda s: s.target),
    ("schemagate_migration_pending", "Migrations still to apply", lambda s: s.pending),
    ("schemagate_migration_ready", "1 when the database is at its target", lambda s: int(s.ready)),
    ("schemagate_migration_stalled", "1 when it cannot progress until someone changes something",
     lambda s: int(s.stalled)),
    ("schemagate_migration_awaiting_approval", "1 while a plan waits for a person's approval",
     lambda s: int(s.awaiting_approval)),
    ("schemagate_migration_not_ready_since_timestamp_seconds", "Since when Ready has not been True (absent while "
     "Ready)", lambda s: s.not_ready_since),
    ("schemagate_migration_last_success_timestamp_seconds", "When the newest successful Job finished",
     lambda s: s.last_success),
)


def finished_runs(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Pure: runs recorded in status.history by this reconcile (absorb_jobs records each exactly once)."""
    before = {r.get("job") for r in old.get("history") or [] if isinstance(r, dict)}
    return [r for r in new.get("history") or [] if isinstance(r, dict) and r.get("job") not in before
            and r.get("outcome") in ("Succeeded", "Failed")]


def held_deployments(status: Mapping[str, Any]) -> dict[str, int]:
    """Pure: Deployment → pods the rollout gate holds, from status.rolloutGate."""
    entries = (status.get("rolloutGate") or {}).get("deployments") or []
    return {str(e["name"]): int(e.get("waiting") or 0) for e in entries if isinstance(e, dict) and e.get("name")}


class State:
    """What the leader last saw; rendered at scrape time. Lock: reconciles run in worker threads."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._lock = threading.Lock()
        self.migrations: dict[Key, Snapshot] = {}
        self.waiting_since: dict[Key, float] = {}  # entered phase Waiting (for the Lease) at
        self.held: dict[tuple[str, str], tuple[Key, int, float]] = {}  # (ns, deployment) → owner, pods, since
        self.failed_reasons: dict[Key, set[str]] = {}

    def record(self, namespace: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any], *,
               started_job: bool) -> None:
        """After one reconcile: `new` is the status written (or kept), `started_job` whether it created one."""
        key, now = (namespace, name), self._clock()
        with self._lock:
            self.migrations[key] = Snapshot.of(new)
            if started_job:
                JOBS_STARTED.labels(namespace, name).inc()
                since = self.waiting_since.pop(key, None)
                if since is not None:
                    LEASE_WAIT.observe(max(0.0, now - since))
                elif old.get("phase") != "Waiting":  # else: waiting began before this replica led; unknown
                    LEASE_WAIT.observe(0.0)
            if new.get("phase") == "Waiting":
                self.waiting_since.setdefault(key, now)
            elif not started_job:
                self.waiting_since.pop(key, None)
            for run in finished_runs(old, new):
                outcome = run["outcome"]
                if outcome == "Succeeded":
                    JOBS_SUCCEEDED.labels(namespace, name).inc()
                else:
                    reason = bounded_reason(run.get("reason"))
                    self.failed_reasons.setdefault(key, set()).add(reason)
                    JOBS_FAILED.labels(namespace, name, reason).inc()
                if isinstance(run.get("durationSeconds"), (int, float)):
                    JOB_DURATION.labels(outcome).observe(float(run["durationSeconds"]))
            held = held_deployments(new)
            for dep_key in [d for d, (owner, _, _) in self.held.items() if owner == key and d[1] not in held]:
                del self.held[dep_key]
            for deployment, pods in held.items():
                dep_key = (namespace, deployment)
                if pods <= 0:
                    self.held.pop(dep_key, None)
                    continue
                before = self.held.get(dep_key)
                # The oldest held pod has waited since the Deployment's first pod was held without a break.
                self.held[dep_key] = (key, pods, before[2] if before and before[1] > 0 else now)

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._lock:
            self.migrations.pop(key, None)
            self.waiting_since.pop(key, None)
            for dep_key in [d for d, (owner, _, _) in self.held.items() if owner == key]:
                del self.held[dep_key]
            for counter in (JOBS_STARTED, JOBS_SUCCEEDED):
                _remove(counter, namespace, name)
            for reason in self.failed_reasons.pop(key, set()):
                _remove(JOBS_FAILED, namespace, name, reason)

    def clear(self) -> None:
        """No longer the leader: the gauges describe nothing this replica watches any more."""
        with self._lock:
            self.migrations.clear()
            self.waiting_since.clear()
            self.held.clear()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = self._clock()
        with self._lock:
            migrations = dict(self.migrations)
            held = dict(self.held)
        families = [(GaugeMetricFamily(metric, text, labels=["namespace", "name"]), value)
                    for metric, text, value in MIGRATION_GAUGES]
        for (ns, name), s in sorted(migrations.items()):
            for family, value in families:
                sample = value(s)
                if sample is not None:
                    family.add_metric([ns, name], float(sample))
        pods = GaugeMetricFamily("schemagate_rollout_gate_held_pods",
                                 "Pods of a gated Deployment the rollout gate holds back",
                                 labels=["namespace", "deployment"])
        oldest = GaugeMetricFamily("schemagate_rollout_gate_oldest_held_seconds",
                                   "How long the Deployment's longest-held pod has waited",
                                   labels=["namespace", "deployment"])
        for (ns, deployment), (_, count, since) in sorted(held.items()):
            pods.add_metric([ns, deployment], float(count))
            oldest.add_metric([ns, deployment], max(0.0, now - since))
        yield from (family for family, _ in families)
        yield pods
        yield oldest

    def describe(self) -> Sequence[GaugeMetricFamily]:
        return []  # unknown until collected: keeps the registry from calling collect() at registration


def _remove(metric: Any, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass


STATE = State()
REGISTRY.register(STATE)


def serve(port: int, address: str = "0.0.0.0") -> Any:
    """/metrics over HTTP in a daemon thread (prometheus_client's own server); returns (server, thread)."""
    return start_http_server(port, addr=address, registry=REGISTRY)
