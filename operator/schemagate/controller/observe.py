"""Reading the world for one SchemaMigration: ConfigMaps, Secret, database, Lease, Jobs. Blocking I/O;
the reconcile runs these in worker threads so the event loop never waits on them.

Every failure becomes `Blocked(reason, message)` whose message names the object (never a secret's value).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
import psycopg.conninfo
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from schemagate.api import reasons
from schemagate.api import v1alpha1 as api
from schemagate.controller import allow, death
from schemagate.controller.decide import JobState, LeaseState, MigrationFile, ObservedDatabase, migration_file
from schemagate.controller.jobs import CONTAINER, LABEL_MIGRATION
from schemagate.lease import RUN_ANNOTATION, Observed
from schemagate.migrate import connection
from schemagate.migrate.dburl import describe, redact
from schemagate.migrate.errors import MigrateError
from schemagate.migrate.source import load_files
from schemagate.migrate.store import parse_table_name, read_tracking

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5


class Blocked(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class Unreadable(Exception):
    """The operator could not read the database while `job` runs on it: not a verdict on anything."""

    def __init__(self, job: str, message: str):
        super().__init__(message)
        self.job = job
        self.message = message


@dataclass(frozen=True)
class DatabaseAddress:
    url: str
    host: str
    port: int
    name: str
    table: str

    def __repr__(self) -> str:  # the URL may hold a password: never print it
        return f"Database({self.host}:{self.port}/{self.name} table={self.table})"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.name}"


def _redact(text: str, secret: str = "") -> str:
    """`text` without the Secret's value (the whole of it) or any password in it or in the text."""
    return redact(text, secret, env={})


def _blocked(e: MigrateError, url: str) -> Blocked:
    """A failure of the operator's own read: its first line (a condition message is one line)."""
    first = e.message.strip().splitlines()[0] if e.message.strip() else e.reason
    return Blocked(e.reason, _redact(first, url))


def migration_files(core: client.CoreV1Api, namespace: str, names: list[str],
                    env: Mapping[str, str] | None = None) -> tuple[MigrationFile, ...]:
    """Merge the ConfigMaps, refuse clashing names, and validate every file with the engine's loader;
    ENVSUB reads `env` (the declared variables, `jobenv.plan_environment`; None: no variable at all)."""
    merged: dict[str, str] = {}
    origin: dict[str, str] = {}
    for name in names:
        cm = _read(core.read_namespaced_config_map, "ConfigMap", namespace, name, reasons.SOURCE_NOT_FOUND)
        binary = sorted(k for k in (cm.binary_data or {}) if k.endswith(".sql"))
        if binary:
            # kubectl puts a file that is not UTF-8 there; the Job would mount it, the plan would not see it
            raise Blocked(reasons.INVALID_MIGRATIONS,
                          f"file {binary[0]} in ConfigMap {namespace}/{name} is not UTF-8 text (it is under "
                          f"binaryData): save it as UTF-8 and re-create the ConfigMap")
        for key, text in (cm.data or {}).items():
            if key in merged:
                raise Blocked(reasons.INVALID_MIGRATIONS, f"file {key} is in both ConfigMap {namespace}/{origin[key]} "
                                                          f"and ConfigMap {namespace}/{name}")
            merged[key] = text
            origin[key] = name
    try:
        loaded = load_files(merged, env={} if env is None else env)
    except MigrateError as e:
        # The engine's message names the file and line; where that file is, only the operator knows.
        where = f" (ConfigMap {namespace}/{origin[e.file]})" if e.file in origin else ""
        raise Blocked(e.reason, f"{e.message}{where}") from None
    if not loaded:
        # The plan would say "the source holds no .sql file" without naming where it looked, or what it found.
        keys = ", ".join(sorted(merged)[:10]) or "none"
        listed = ", ".join(f"ConfigMap {namespace}/{n}" for n in names)
        raise Blocked(reasons.NO_MIGRATION_FILES,
                      f"{listed} hold{'s' if len(names) == 1 else ''} no goose migration file: a migration is a key "
                      f"named <version>_<name>.sql (lower-case .sql); keys found: {keys}")
    return tuple(migration_file(m) for m in loaded)


def _read(read: Any, kind: str, namespace: str, name: str, reason: str) -> Any:
    """Read one object the spec names; absent or forbidden blocks the plan with `reason`."""
    try:
        return read(name, namespace)
    except ApiException as e:
        if e.status == 404:
            raise Blocked(reason, f"{kind} {namespace}/{name} not found") from None
        if e.status == 403:
            raise Blocked(reason, f"the operator may not read {kind} {namespace}/{name} (forbidden)") from None
        raise


def claim_labels(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, str]:
    """The labels of the backup claim the spec names (whether its owner allowed backups onto it)."""
    pvc = _read(core.read_namespaced_persistent_volume_claim, "PersistentVolumeClaim", namespace, name,
                reasons.BACKUP_CLAIM_NOT_ALLOWED)
    return dict((pvc.metadata and pvc.metadata.labels) or {})


def database(core: client.CoreV1Api, namespace: str, spec: api.SchemaMigrationSpec,
             allowed_hosts: tuple[str, ...] = ()) -> DatabaseAddress:
    """The Secret's URL, parsed, and its hosts checked against `allowed_hosts` (empty: any) before anything
    can dial it."""
    ref = spec.database.secret_ref
    secret = _read(core.read_namespaced_secret, "Secret", namespace, ref.name, reasons.SECRET_NOT_FOUND)
    raw = (secret.data or {}).get(ref.key)
    if raw is None:
        raise Blocked(reasons.SECRET_NOT_FOUND, f"Secret {namespace}/{ref.name} has no key {ref.key!r}")
    try:
        url = base64.b64decode(raw).decode("utf-8").strip()
    except (ValueError, UnicodeDecodeError):  # binary junk would otherwise fail the reconcile with no status
        raise Blocked(reasons.SECRET_NOT_FOUND, f"Secret {namespace}/{ref.name} key {ref.key!r} is not text: "
                                                f"it must hold the database URL") from None
    if not url:
        raise Blocked(reasons.SECRET_NOT_FOUND, f"Secret {namespace}/{ref.name} key {ref.key!r} is empty: "
                                                f"it must hold the database URL")
    try:
        # libpq's own parser, before anything dials: a value it cannot parse (a token, a password, another
        # app's config) is never quoted, since its parse errors quote the text they choke on.
        conninfo = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        raise Blocked(reasons.INVALID_DATABASE_URL,
                      f"Secret {namespace}/{ref.name} key {ref.key!r} is not a PostgreSQL URL (libpq cannot parse "
                      f"it; expected postgres://user:password@host:5432/dbname)") from None
    for option in ("port", "connect_timeout"):
        # libpq parses these only when it dials: the value would be refused then, and until then every
        # message would name the default port (5432) the Secret does not hold. Not quoted: it is Secret text.
        value = str(conninfo.get(option) or "")
        if not all(part.strip().isdigit() for part in value.split(",") if part.strip()):  # empty: the default
            raise Blocked(reasons.INVALID_DATABASE_URL,
                          f"Secret {namespace}/{ref.name} key {ref.key!r} is not a usable PostgreSQL URL: its "
                          f"{option} is not a number (expected postgres://user:password@host:5432/dbname); "
                          f"nothing was dialled")
    refusal = allow.check_database(f"Secret {namespace}/{ref.name} key {ref.key!r}",
                                   {k: str(v) for k, v in conninfo.items()}, allowed_hosts)
    if refusal is not None:
        raise Blocked(refusal.reason, refusal.message)
    target = describe(url, env={})
    return DatabaseAddress(url, target.host, target.port, target.name, spec.database.table)


def database_state(db: DatabaseAddress) -> ObservedDatabase:
    try:
        table = parse_table_name(db.table)
        with connection.open_session(db.url, connect_timeout=CONNECT_TIMEOUT) as conn:
            tracking = read_tracking(conn, table)  # one query on a database schemagate migrated
            if not tracking.exists:
                return ObservedDatabase(0, frozenset())
            state, sums = tracking.state, tracking.checksums or {}
    except psycopg.Error as e:  # the connection lost mid-read, or the read refused
        raise _blocked(connection.failure(e, db.url), db.url) from None
    except MigrateError as e:
        raise _blocked(e, db.url) from None
    latest = state.latest_rows()
    # A checksum counts only for the row it was recorded with; goose re-applying a version makes it stale.
    checksums = tuple(sorted((v, rec.sha256) for v, rec in sums.items()
                             if v in latest and latest[v].id == rec.goose_row_id))
    return ObservedDatabase(state.current_version, frozenset(state.applied_versions), checksums)


@dataclass(frozen=True)
class LeaseRead:
    state: LeaseState
    run: dict[str, Any] | None = None  # the last holder's progress or result (lease.RUN_ANNOTATION)


def lease_state(coordination: client.CoordinationV1Api, namespace: str, name: str,
                batch: client.BatchV1Api | None = None) -> LeaseRead:
    """The Lease, its last runner's words, and whether its holder (a Job, "namespace/name") can still renew it."""
    try:
        resp: Any = coordination.read_namespaced_lease(name, namespace, _preload_content=False)
    except ApiException as e:
        if e.status == 404:
            return LeaseRead(LeaseState())
        raise
    doc = json.loads(resp.data)
    observed = Observed.from_spec(doc.get("spec"))
    expired = observed.expired(datetime.now(UTC))
    gone = False
    if observed.holder and not expired and batch is not None:
        gone = _holder_gone(batch, observed.holder)
    run = None
    try:
        run = json.loads(((doc.get("metadata") or {}).get("annotations") or {}).get(RUN_ANNOTATION) or "null")
    except ValueError:
        pass
    return LeaseRead(LeaseState(observed.holder, expired, gone), run if isinstance(run, dict) else None)


def _holder_gone(batch: client.BatchV1Api, holder: str) -> bool:
    """A holder "namespace/job" whose Job is deleted or finished: no pod of it will ever renew the Lease."""
    namespace, _, job = holder.partition("/")
    if not namespace or not job:
        return False  # not a Job (a person's `schemagate migrate`): only its duration says
    try:  # list, not get: the operator's RBAC lists and watches Jobs
        found = batch.list_namespaced_job(namespace, field_selector=f"metadata.name={job}").items
    except ApiException:
        return False  # cannot tell: wait for the duration, as before
    return not found or _phase(found[0])[0] != "Running"


@dataclass(frozen=True)
class JobInfo:
    state: JobState
    started: str | None
    finished: str | None
    created: str | None = None  # the Job's creationTimestamp: the order of runs, by the apiserver's clock


def _ts(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _phase(job: client.V1Job) -> tuple[Literal["Running", "Succeeded", "Failed"], str | None, str | None]:
    """(phase, finished, why the Job controller failed it). Only the final conditions count
    (SuccessCriteriaMet/FailureTarget come before them)."""
    for cond in (job.status and job.status.conditions) or []:
        if cond.status == "True" and cond.type == "Complete":
            return "Succeeded", _ts(cond.last_transition_time), None
        if cond.status == "True" and cond.type == "Failed":
            why = ": ".join(str(x) for x in (cond.reason, cond.message) if x) or None
            return "Failed", _ts(cond.last_transition_time), why
    return "Running", None, None


def _termination(core: client.CoreV1Api, namespace: str, job: str) -> tuple[dict[str, Any] | None, str | None]:
    """The runner's JSON result from the newest terminated pod (its progress, made a result naming the file
    that was running, when it died before writing one), else the raw (redacted) message."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    oldest = datetime.min.replace(tzinfo=UTC)
    pods.sort(key=lambda p: (p.metadata and p.metadata.creation_timestamp) or oldest, reverse=True)
    for pod in pods:
        for status in (pod.status and pod.status.container_statuses) or []:
            term: client.V1ContainerStateTerminated | None = status.state.terminated if status.state else None
            if status.name != CONTAINER or term is None:
                continue
            text = (term.message or "").strip()
            ended = death.how_it_ended(term.exit_code, term.signal, term.reason)
            try:
                doc = json.loads(text)
                if isinstance(doc, dict):
                    return (death.result_of(doc, ended) if doc.get("progress") else doc), None
            except ValueError:
                pass
            return None, (f"{ended}: {_redact(text)}" if text else ended)
    return None, None


# Why a Job's pod cannot start, in the words of whoever keeps retrying it: the kubelet (a container it
# cannot create, e.g. a spec.job.env Secret or key that does not exist; an image it cannot pull, or that is
# not on the node), the scheduler (no node fits) or the Job controller (the pod refused at creation: a
# ServiceAccount that does not exist, a ResourceQuota, Pod Security admission). None of them gives up, so
# the Job stays active until spec.job.activeDeadlineSeconds; status says why meanwhile.
_CANNOT_START = frozenset({
    "CreateContainerConfigError", "CreateContainerError",  # the kubelet cannot create the container
    "ErrImagePull", "ImagePullBackOff", "ImageInspectError",  # the image cannot be pulled or read
    "InvalidImageName", "ErrImageNeverPull",  # no such reference; not on the node under imagePullPolicy Never
})
UNSCHEDULABLE = "Unschedulable"  # PodScheduled=False: no node fits the pod (nodeSelector, tolerations, resources)
FAILED_CREATE = "FailedCreate"  # the Job controller's Warning Event on the Job: the apiserver refused the pod
_FINISHED_POD = frozenset({"Succeeded", "Failed"})
_EPOCH = datetime.min.replace(tzinfo=UTC)


def _pod_cannot_start(pod: client.V1Pod) -> str | None:
    """Why this pod's containers cannot start ("Reason: the kubelet's or scheduler's words"), or None."""
    status = pod.status
    if status is None:
        return None
    for cs in [*(status.init_container_statuses or []), *(status.container_statuses or [])]:
        waiting = cs.state.waiting if cs.state else None
        if waiting is not None and waiting.reason in _CANNOT_START:
            which = "" if cs.name == CONTAINER else f" (container {cs.name})"  # the init container of an image source
            return f"{waiting.reason}{which}: {waiting.message or ''}".rstrip(": ")
    for cond in status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == UNSCHEDULABLE:
            return f"{UNSCHEDULABLE}: {cond.message or ''}".rstrip(": ")
    return None


def _when(event: client.CoreV1Event) -> datetime:
    series = event.series.last_observed_time if event.series is not None else None
    created = event.metadata.creation_timestamp if event.metadata is not None else None
    stamps = [t for t in (event.last_timestamp, series, event.event_time, created) if isinstance(t, datetime)]
    return max(stamps, default=_EPOCH)


def _failed_create(core: client.CoreV1Api, namespace: str, job: str, uid: str | None,
                   after: datetime | None) -> str | None:
    """The newest FailedCreate Event the Job controller recorded on `job` after `after` (the newest pod it
    did create: an older refusal is history), as "FailedCreate: <the apiserver's words>"; None without one."""
    selector = f"involvedObject.kind=Job,involvedObject.name={job},reason={FAILED_CREATE}"
    if uid:
        selector += f",involvedObject.uid={uid}"  # not a same-named Job's
    try:
        events = core.list_namespaced_event(namespace, field_selector=selector).items
    except ApiException as e:  # forbidden (a chart without list on events): not a verdict
        log.debug("cannot list the Events of Job %s/%s: %s", namespace, job, e.reason)
        return None
    recent = [e for e in events if e.message and (after is None or _when(e) > after)]
    if not recent:
        return None
    newest = max(recent, key=_when)
    return f"{FAILED_CREATE}: {str(newest.message).strip()}"


def _waiting(core: client.CoreV1Api, namespace: str, job: str, uid: str | None = None) -> str | None:
    """Why the running Job's pod cannot start (the words name objects and keys, never values), or None.

    One pod list; the Job's Events are listed only when it has no pod that is pending or running (the Job
    controller could not create one)."""
    try:
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    except ApiException:
        return None  # not a verdict: the Job's own outcome will say
    live = [pod for pod in pods if (pod.status and pod.status.phase) not in _FINISHED_POD]
    for pod in live:
        why = _pod_cannot_start(pod)
        if why is not None:
            return _redact(why)
    if live:
        return None
    created = [pod.metadata.creation_timestamp for pod in pods
               if pod.metadata is not None and isinstance(pod.metadata.creation_timestamp, datetime)]
    why = _failed_create(core, namespace, job, uid, max(created, default=None))
    return None if why is None else _redact(why)


def _nothing_recorded(name: str, created: str | None, started: str | None) -> bool:
    return False


def jobs(  # noqa: PLR0917  tests/unit/test_job_outcomes.py passes all seven by position
        batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str, name: str, uid: str,
        recorded: Callable[[str, str | None, str | None], bool] = _nothing_recorded,
        lease_run: dict[str, Any] | None = None) -> list[JobInfo]:
    """This SchemaMigration's Jobs; results are fetched only for finished Jobs status has not `recorded`
    (name, creationTimestamp, startTime). `lease_run` is what the database's Lease keeps of its last holder:
    the word of a runner whose pod is gone."""
    out = []
    for job in batch.list_namespaced_job(namespace, label_selector=f"{LABEL_MIGRATION}={name}").items:
        meta = job.metadata
        if meta is None or not meta.name or not any(o.uid == uid for o in meta.owner_references or []):
            continue  # a Job of an earlier SchemaMigration with the same name
        phase, ended, why = _phase(job)
        status = job.status
        created, started = _ts(meta.creation_timestamp), _ts(status and status.start_time)
        result, message = (None, None)
        if phase == "Running" and status is not None and not getattr(status, "ready", None):
            message = _waiting(core, namespace, meta.name, meta.uid)
        if phase != "Running" and not recorded(meta.name, created, started):
            result, message = _termination(core, namespace, meta.name)
            if result is None and lease_run is not None and lease_run.get("holder") == f"{namespace}/{meta.name}":
                # The pod went with its termination message (deleted at the deadline, or with grace 0).
                ended = why or "the pod is gone"
                result = death.result_of(lease_run, ended) if lease_run.get("progress") else lease_run
            if result is not None and why and phase == "Failed":
                result = death.with_outcome(result, why.split(":")[0])
            if result is None and why:
                # No runner result: the runner was stopped (activeDeadlineSeconds) or never ran; what the
                # Job controller says comes first, the pod's last words after it, on one line.
                last = (message or "").strip().splitlines()[-1:]
                message = f"{why} (last output: {last[0][:200]})" if last else why
        out.append(JobInfo(JobState(meta.name, phase, result, message),
                           started, _ts(status and status.completion_time) or ended, created))
    return out
