"""The read step of a SchemaMigration's reconcile: everything observed this round, as one value.

Reading stops at the first thing that blocks the plan (`World.stop`), and nothing after it is read — with
one exception that keeps history whole: when the Secret or the Lease cannot be read, the Jobs still are, so
their outcomes are recorded while the plan is blocked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from schemagate import lease
from schemagate.api import conditions as c
from schemagate.api import reasons
from schemagate.api import v1alpha1 as api
from schemagate.controller import allow, jobenv, objects, observe
from schemagate.controller import decide as p
from schemagate.controller import status as st
from schemagate.controller.config import Options
from schemagate.kube import Clients


@dataclass
class World:
    """One SchemaMigration and what was read for it this round."""

    obj: dict[str, Any]
    now: str
    spec: api.SchemaMigrationSpec | None = None
    target: int | None = None
    db: observe.DatabaseAddress | None = None  # where its database is (from the Secret)
    lease_name: str | None = None
    lease: observe.LeaseRead = field(default_factory=lambda: observe.LeaseRead(p.LeaseState()))
    jobs: list[observe.JobInfo] | None = None  # None: not read
    migrations: tuple[p.MigrationFile, ...] | None = None  # None: an image source (the Job reads them)
    source_key: str = ""
    database: p.ObservedDatabase | None = None  # its version table, when read
    stop: observe.Blocked | observe.Unreadable | None = None  # why the plan cannot be made this round

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.obj["metadata"]
        return meta

    @property
    def namespace(self) -> str:
        return str(self.meta["namespace"])

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def generation(self) -> int:
        return int(self.meta.get("generation") or 1)

    @property
    def old(self) -> dict[str, Any]:
        """The status as stored."""
        old: dict[str, Any] = self.obj.get("status") or {}
        return old

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.meta.get("annotations") or {})

    @property
    def retry(self) -> str | None:
        return self.annotations.get(api.RETRY_ANNOTATION)

    @property
    def running_job(self) -> str | None:
        return next((i.state.name for i in self.jobs or [] if i.state.phase == "Running"), None)


def acting(namespace: str, opts: Options) -> bool:
    """Whether the operator acts in `namespace` (cluster-wide mode watches more than it acts in)."""
    return not opts.act_namespaces or namespace in opts.act_namespaces


def spec_of(obj: dict[str, Any]) -> tuple[api.SchemaMigrationSpec, int | None]:
    """The validated spec and its resolved target; Blocked(InvalidSpec) saying which field is wrong."""
    try:
        spec = api.SchemaMigrationSpec.model_validate(obj.get("spec") or {})
        target = spec.target()
    except ValidationError as e:
        raise observe.Blocked(reasons.INVALID_SPEC, objects.spec_error(e)) from None
    except ValueError as e:
        raise observe.Blocked(reasons.INVALID_SPEC, str(e)) from None
    name = str((obj.get("metadata") or {}).get("name") or "")
    if len(name) > api.NAME_MAX:
        # Created before the CRD refused it: listing its Jobs by label would fail every reconcile (400)
        # and leave no status at all.
        raise observe.Blocked(reasons.INVALID_SPEC, f"{api.NAME_RULE['message']}; {name!r} has {len(name)}: "
                                                    f"re-create it under a shorter name; nothing was created")
    return spec, target


def check_allowed(k: Clients, namespace: str, spec: api.SchemaMigrationSpec, opts: Options) -> None:
    """Blocked before anything is read or created when the spec names what the installer did not allow."""
    if not acting(namespace, opts):
        # Watched (status, Events) but not granted: say so, rather than a forbidden read of its ConfigMap.
        raise observe.Blocked(reasons.NAMESPACE_NOT_ALLOWED,
                              f"schemagate does not act in namespace {namespace}: an admin adds it to the "
                              f"schemagate chart's watch.namespaces (operator flag --act-namespace); nothing "
                              f"was read or created")
    allowlist = opts.allowlist()
    refusal = allow.check(spec, allowlist)
    if refusal is None and spec.backup is not None:
        labels = observe.claim_labels(k.core, namespace, spec.backup.claim_name)
        refusal = allow.check_claim(namespace, spec.backup.claim_name, labels, allowlist)
    if refusal is not None:
        raise observe.Blocked(refusal.reason, refusal.message)


def read(k: Clients, obj: dict[str, Any], opts: Options) -> World:
    """Everything the decision needs, read in the order that lets a failure say the most."""
    w = World(obj=obj, now=c.now_rfc3339())
    try:
        w.spec, w.target = spec_of(obj)
        check_allowed(k, w.namespace, w.spec, opts)
        # The Lease first: it keeps the last runner's words, all there is when its pod went with them.
        unreadable: observe.Blocked | None = None
        try:
            w.db = observe.database(k.core, w.namespace, w.spec, opts.allowed_database_hosts)
            w.lease_name = lease.lease_name(w.db.host, w.db.port, w.db.name, w.db.table)
            w.lease = observe.lease_state(k.coordination, w.namespace, w.lease_name, k.batch)
        except observe.Blocked as b:
            unreadable = b  # Job outcomes are still recorded; then this blocks the plan
        w.jobs = observe.jobs(k.batch, k.core, w.namespace, w.name, w.meta["uid"],
                              st.Recorded(w.old.get("history")), w.lease.run)
        if unreadable is not None:
            raise unreadable
        assert w.db is not None
        if w.spec.source.config_maps:
            w.migrations = observe.migration_files(k.core, w.namespace, list(w.spec.source.config_maps),
                                                   env=jobenv.plan_environment(w.spec.job))
        elif w.spec.source.image:
            w.source_key = f"{w.spec.source.image.image}|{w.spec.source.image.path}"
        try:
            w.database = observe.database_state(w.db)
        except observe.Blocked as b:
            running = w.running_job
            if running is None or b.reason != reasons.CONNECTION_FAILED:
                raise
            # Our Job is at work on that database: a read of ours failing (a restart, a blip) says nothing
            # about the run, whose own result will. Not Stalled, no Warning: look again at the next resync.
            raise observe.Unreadable(running, b.message) from None
    except (observe.Blocked, observe.Unreadable) as stop:
        w.stop = stop
    return w
