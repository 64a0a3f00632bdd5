"""The act step of a SchemaMigration's reconcile: what the decision asks of the cluster — free a Lease whose
holder is gone, create the plan's Job. (The rollout gate's pod patches are `gate_reconcile`'s.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from schemagate import lease
from schemagate.api import reasons
from schemagate.api import v1alpha1 as api
from schemagate.controller import decide as p
from schemagate.controller import jobs as jobs_mod
from schemagate.controller import objects, observe, policy
from schemagate.controller.config import Options
from schemagate.controller.events import NORMAL, Event
from schemagate.controller.world import World
from schemagate.kube import Clients


@dataclass
class Acted:
    """What the act step did."""

    created: bool = False  # a Job was created (not adopted)
    current_job: dict[str, Any] | None = None  # status.currentJob for the Job started or adopted
    events: list[Event] = field(default_factory=list)
    blocked: observe.Blocked | None = None  # the apiserver refused, or the Job's name is taken


def create_job(k: Clients, obj: dict[str, Any], spec: api.SchemaMigrationSpec, action: p.StartJob, *,
               lease_name: str, retry: str | None, opts: Options, backup_file: str | None = None,
               files: tuple[p.MigrationFile, ...] | None = None, db: p.ObservedDatabase | None = None) -> bool:
    """Create the plan's Job; False when it already exists (created before a restart: adopt it)."""
    meta = obj["metadata"]
    digest, rollback = jobs_mod.plan_digest(files, action.command, action.target, db or p.ObservedDatabase(0))
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
            raise observe.Blocked(reasons.JOB_REJECTED, f"cannot create Job {meta['namespace']}/{action.job}: "
                                                        f"{objects.api_message(e)}; nothing was run") from None
        raise
    return True


def started(action: p.StartJob, current: int) -> str:
    """The MigrationStarted Event's message."""
    if action.command == "down":
        return f"Job {action.job} started: rolling back version {current} → {action.target}"
    if action.command == "accept-checksum":
        return f"Job {action.job} started: accepting the new checksum of version {action.target}"
    return f"Job {action.job} started: version {current} → {'latest' if action.target is None else action.target}"


def act(k: Clients, w: World, decision: policy.Decision | None, opts: Options) -> Acted:
    """Carry out a StartJob decision; anything else asks nothing of the cluster."""
    done = Acted()
    action = decision.action if decision is not None else None
    if not isinstance(action, p.StartJob):
        return done
    assert decision is not None and w.spec is not None and w.database is not None and w.lease_name is not None
    holder = w.lease.state
    # Its Job is finished or deleted: free the Lease now rather than make our runner wait its duration.
    if holder.holder_gone and holder.holder and \
            lease.release(lease._Api(k.coordination.api_client), w.namespace, w.lease_name, holder.holder):
        done.events.append(Event(NORMAL, reasons.LEASE_TAKEN_OVER, f"Lease {w.namespace}/{w.lease_name} was held "
                                                                   f"by {holder.holder}, whose Job is gone: freed"))
    try:
        done.created = create_job(k, w.obj, w.spec, action, lease_name=w.lease_name, retry=w.retry, opts=opts,
                                  backup_file=decision.backup_file, files=w.migrations, db=w.database)
        if not done.created and action.job not in {i.state.name for i in w.jobs or []}:
            # Our own Job would have been listed above (and planned as WaitForJob): this one belongs to
            # a deleted SchemaMigration of the same name. Adopting it would report its outcome as ours.
            raise observe.Blocked(reasons.JOB_CONFLICT, f"Job {w.namespace}/{action.job} already exists but is not "
                                                        f"owned by this SchemaMigration (one of the same name was "
                                                        f"deleted and re-created?); nothing was run. It is created "
                                                        f"once that Job is gone: kubectl delete job {action.job}")
    except observe.Blocked as b:
        done.blocked = b
        return done
    if done.created:
        done.events.append(Event(NORMAL, reasons.MIGRATION_STARTED, started(action, w.database.current)))
    done.current_job = api.RunRecord(
        job=action.job, generation=w.generation, plan=action.plan, retry=w.retry, target_version=action.target,
        outcome="Running", version_before=w.database.current, started_at=w.now, command=action.command,
        approved=decision.approved).model_dump(by_alias=True, exclude_none=True)
    return done
