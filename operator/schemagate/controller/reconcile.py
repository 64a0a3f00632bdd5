"""One level-based reconcile of one SchemaMigration: observe → plan → act → status, all from current state.

Runs in a worker thread (the Kubernetes client and psycopg calls block); the Controller serialises runs
per object, so two triggers never reconcile the same SchemaMigration at once.
"""

from __future__ import annotations

import json
import logging
import socket
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from schemagate import lease
from schemagate.api import conditions as c
from schemagate.api import v1alpha1 as api
from schemagate.controller import allow
from schemagate.controller import gate_reconcile
from schemagate.controller import jobs as jobs_mod
from schemagate.controller import metrics
from schemagate.controller import observe
from schemagate.controller import plan as p
from schemagate.controller import policy
from schemagate.controller import status as st

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    job_image: str = "schemagate:dev"
    # What the installer allows beyond the runner image and the job ServiceAccount (controller/allow.py)
    allowed_images: tuple[str, ...] = ()
    allowed_service_accounts: tuple[str, ...] = ()
    job_service_account: str | None = None
    backup_claim_label: str = allow.DEFAULT_BACKUP_CLAIM_LABEL
    allowed_database_hosts: tuple[str, ...] = ()  # empty: any host a Secret names
    # Cluster-wide mode: the namespaces the operator acts in (its RBAC's RoleBindings); empty: every one
    act_namespaces: tuple[str, ...] = ()

    def allowlist(self) -> allow.Allowlist:
        return allow.Allowlist(self.job_image, self.allowed_images, self.allowed_service_accounts,
                               self.job_service_account, self.backup_claim_label)


class Clients:
    def __init__(self, api_client: client.ApiClient):
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)


def _spec_error(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(x) for x in first["loc"])
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"spec.{where}: {first['msg']}{more}"


def _strip_none(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _strip_none(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [_strip_none(v) for v in d]
    return d


def post_event(k: Clients, obj: dict[str, Any], event: st.Event) -> None:
    meta = obj["metadata"]
    now = c.now_rfc3339()
    body = {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": api.API_VERSION, "kind": api.KIND, "name": meta["name"],
                           "namespace": meta["namespace"], "uid": meta.get("uid")},
        "type": event.type, "reason": event.reason, "message": event.message[:1024],
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "source": {"component": "schemagate"},
        "reportingComponent": "schemagate.io/operator", "reportingInstance": socket.gethostname()[:128],
    }
    try:
        k.core.create_namespaced_event(meta["namespace"], body)  # type: ignore[arg-type]  # dicts go as-is
    except ApiException as e:  # events are best effort; status carries the truth
        log.warning("could not post event %s for %s/%s: %s", event.reason, meta["namespace"], meta["name"], e.reason)


def _create_job(k: Clients, obj: dict[str, Any], spec: api.SchemaMigrationSpec, action: p.RunUp, lease_name: str,
                retry: str | None, opts: Options, backup_file: str | None = None,
                files: tuple[p.MigrationFile, ...] | None = None, db: p.DbState | None = None) -> bool:
    """Create the plan's Job; False when it already exists (created before a restart: adopt it)."""
    meta = obj["metadata"]
    digest, rollback = jobs_mod.plan_digest(files, action.command, action.target, db or p.DbState(0))
    req = jobs_mod.JobRequest(name=action.job, plan=action.plan, generation=int(meta.get("generation") or 1),
                              target=action.target, lease_name=lease_name,
                              lease_holder=p.lease_holder(meta["namespace"], action.job),
                              default_image=opts.job_image, retry=retry, command=action.command,
                              backup_file=backup_file, expect_digest=digest, expect_rollback=rollback,
                              service_account=opts.job_service_account)
    body = jobs_mod.render_job(obj, spec, req)
    try:
        k.batch.create_namespaced_job(meta["namespace"], body)  # type: ignore[arg-type]  # dicts go as-is
    except ApiException as e:
        if e.status == 409:
            return False
        if e.status in (400, 403, 422):  # it will be refused again until someone changes something: say so
            raise observe.Blocked(c.JOB_REJECTED, f"cannot create Job {meta['namespace']}/{action.job}: "
                                                  f"{_api_message(e)}; nothing was run") from None
        raise
    return True


def _check_allowed(k: Clients, namespace: str, spec: api.SchemaMigrationSpec, allowlist: allow.Allowlist) -> None:
    """Stop here, before anything is read or created, when the spec names what the installer did not allow."""
    refusal = allow.check(spec, allowlist)
    if refusal is None and spec.backup is not None:
        labels = observe.claim_labels(k.core, namespace, spec.backup.claim_name)
        refusal = allow.check_claim(namespace, spec.backup.claim_name, labels, allowlist)
    if refusal is not None:
        raise observe.Blocked(refusal.reason, refusal.message)


def _api_message(e: ApiException) -> str:
    """The apiserver's own message (names the invalid field, the quota, the missing right)."""
    try:
        message = json.loads(e.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or f"{e.status} {e.reason}")


def _started(action: p.RunUp, current: int) -> str:
    if action.command == "down":
        return f"Job {action.job} started: rolling back version {current} → {action.target}"
    if action.command == "accept-checksum":
        return f"Job {action.job} started: accepting the new checksum of version {action.target}"
    return f"Job {action.job} started: version {current} → {'latest' if action.target is None else action.target}"


def reconcile(k: Clients, namespace: str, name: str, opts: Options) -> str | None:
    """Bring one SchemaMigration's status (and its Job) in line with the world; returns its Lease name."""
    try:
        obj: dict[str, Any] = k.custom.get_namespaced_custom_object(  # type: ignore[assignment]
            api.GROUP, api.VERSION, namespace, api.PLURAL, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    meta = obj["metadata"]
    if meta.get("deletionTimestamp"):
        # Being deleted (foreground or orphan cascade, someone's finalizer). The apiserver bumps the
        # generation as it marks it, which would otherwise read as a spec change and run the plan again.
        return None
    generation = int(meta.get("generation") or 1)
    old: dict[str, Any] = obj.get("status") or {}
    retry = (meta.get("annotations") or {}).get(api.RETRY_ANNOTATION)
    now = c.now_rfc3339()
    runs = {"currentJob": old.get("currentJob"), "lastJob": old.get("lastJob"), "history": old.get("history")}
    events: list[st.Event] = []
    lease_name: str | None = None
    fields: dict[str, Any] = {}
    db_state: p.DbState | None = None  # what the rollout gate compares pods with, when read this round
    created = False
    planned: dict[str, Any] | None = old.get("plan")  # status.plan: the last plan computed
    try:
        try:
            spec = api.SchemaMigrationSpec.model_validate(obj.get("spec") or {})
            target = spec.target()
        except ValidationError as e:
            raise observe.Blocked(c.INVALID_SPEC, _spec_error(e)) from None
        except ValueError as e:
            raise observe.Blocked(c.INVALID_SPEC, str(e)) from None
        if len(name) > api.NAME_MAX:
            # Created before the CRD refused it: listing its Jobs by label would fail every reconcile (400)
            # and leave no status at all.
            raise observe.Blocked(c.INVALID_SPEC, f"{api.NAME_RULE['message']}; {name!r} has {len(name)}: "
                                                  f"re-create it under a shorter name; nothing was created")
        if opts.act_namespaces and namespace not in opts.act_namespaces:
            # Watched (status, Events) but not granted: say so, rather than a forbidden read of its ConfigMap.
            raise observe.Blocked(c.NAMESPACE_NOT_ALLOWED,
                                  f"schemagate does not act in namespace {namespace}: an admin adds it to the "
                                  f"schemagate chart's watch.namespaces (operator flag --act-namespace); nothing "
                                  f"was read or created")
        _check_allowed(k, namespace, spec, opts.allowlist())
        # The Lease first: it keeps the last runner's words, all there is when its pod went with them.
        db: observe.Database | None = None
        read = observe.LeaseRead(p.LeaseState())
        unreadable: observe.Blocked | None = None
        try:
            db = observe.database(k.core, namespace, spec, opts.allowed_database_hosts)
            lease_name = lease.lease_name(db.host, db.port, db.name, db.table)
            read = observe.lease_state(k.coordination, namespace, lease_name, k.batch)
        except observe.Blocked as b:
            unreadable = b  # Job outcomes are still recorded below; then this blocks the plan
        infos = observe.jobs(k.batch, k.core, namespace, name, meta["uid"], st.Recorded(old.get("history")),
                             read.run)
        runs, events = st.absorb_jobs(old, infos, now)
        if unreadable is not None:
            raise unreadable
        assert db is not None
        migrations = None
        source_key = ""
        if spec.source.config_maps:
            migrations = observe.migration_files(k.core, namespace, list(spec.source.config_maps))
        elif spec.source.image:
            source_key = f"{spec.source.image.image}|{spec.source.image.path}"
        try:
            state = db_state = observe.database_state(db)
        except observe.Blocked as b:
            running = next((i.state.name for i in infos if i.state.phase == "Running"), None)
            if running is None or b.reason != c.CONNECTION_FAILED:
                raise
            # Our Job is at work on that database: a read of ours failing (a restart, a blip) says nothing
            # about the run, whose own result will. Not Stalled, no Warning: look again at the next resync.
            raise observe.Unreadable(running, b.message) from None
        st.fill_version_after(runs, infos, state)
        holder = read.state
        inputs = p.Inputs(
            name=name, namespace=namespace, generation=generation, target=target, migrations=migrations, db=state,
            lease=holder, jobs=tuple(i.state for i in infos), runs=st.prior_runs(runs), retry=retry,
            source_key=source_key, allow_downgrade=spec.allow_downgrade)
        decision = policy.evaluate(inputs, p.plan(inputs), spec, meta.get("annotations") or {}, old)
        action = decision.action
        events += decision.events
        planned = decision.plan  # kept when the Job cannot be created: its lint Events are posted once
        if isinstance(action, p.RunUp) and holder.holder_gone and holder.holder:
            # Its Job is finished or deleted: free the Lease now rather than make our runner wait its duration.
            if lease.free_from(lease._Api(k.coordination.api_client), namespace, lease_name, holder.holder):
                events.append(st.Event("Normal", "LeaseTakenOver", f"Lease {namespace}/{lease_name} was held by "
                                                                   f"{holder.holder}, whose Job is gone: freed"))
        if isinstance(action, p.RunUp):
            created = _create_job(k, obj, spec, action, lease_name, retry, opts, decision.backup_file,
                                  migrations, state)
            if not created and action.job not in {i.state.name for i in infos}:
                # Our own Job would have been listed above (and planned as WaitForJob): this one belongs to
                # a deleted SchemaMigration of the same name. Adopting it would report its outcome as ours.
                raise observe.Blocked(c.JOB_CONFLICT, f"Job {namespace}/{action.job} already exists but is not "
                                                      f"owned by this SchemaMigration (one of the same name was "
                                                      f"deleted and re-created?); nothing was run. It is created "
                                                      f"once that Job is gone: kubectl delete job {action.job}")
            if created:
                events.append(st.Event("Normal", "MigrationStarted", _started(action, state.current)))
            runs["currentJob"] = {"job": action.job, "generation": generation, "plan": action.plan, "retry": retry,
                                  "targetVersion": action.target, "outcome": "Running",
                                  "versionBefore": state.current, "startedAt": now, "command": action.command,
                                  "approved": decision.approved}
        phase, desired, fields = policy.for_action(action, state, old)
        fields["plan"] = decision.plan
    except observe.Unreadable as u:
        phase, desired = st.unreadable(u.job, u.message)
        fields["plan"] = old.get("plan")
    except observe.Blocked as b:
        phase, desired = st.blocked(b.reason, b.message)
        fields["plan"] = planned
    new = st.compose(old, generation, phase, desired, fields, runs, lease_name)
    acting = not opts.act_namespaces or namespace in opts.act_namespaces
    gate = gate_reconcile.run(k, obj, new, db_state, opts.allowed_database_hosts) if acting else None
    new["rolloutGate"] = gate.status if gate else old.get("rolloutGate")
    stalled = st.stalled_event(old, new)
    if stalled and not any(e.type == "Warning" and e.reason == stalled.reason for e in events):
        events.append(stalled)
    if _strip_none(new) != _strip_none(old):
        k.custom.patch_namespaced_custom_object_status(api.GROUP, api.VERSION, namespace, api.PLURAL, name,
                                                       {"status": new})
    for event in events:
        log.log(logging.WARNING if event.type == "Warning" else logging.INFO, "%s/%s: %s: %s",
                namespace, name, event.reason, event.message, extra={"reason": event.reason})
        post_event(k, obj, event)
    gate_reconcile.post_events(k, gate)
    metrics.STATE.record(namespace, name, old, new, created)
    return lease_name
