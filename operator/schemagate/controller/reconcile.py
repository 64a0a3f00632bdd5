"""One level-based reconcile of one SchemaMigration, as named steps, all from current state:

    read (world.py) → decide (pure, but for the cached lint) → act (act.py: free the Lease, create the Job)
    → compose status (pure) → gate the workloads' pods (gate_reconcile.py) → write status once, only when it
    changed (objects.py) → post Events (events.py)

Runs in a worker thread (the Kubernetes client and psycopg calls block); the Controller serialises runs
per object, so two triggers never reconcile the same SchemaMigration at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemagate.api import v1alpha1 as api
from schemagate.controller import decide as p
from schemagate.controller import events as events_mod
from schemagate.controller import gate_reconcile, metrics, objects, observe, policy
from schemagate.controller import status as st
from schemagate.controller.act import Acted, act
from schemagate.controller.config import Options
from schemagate.controller.world import World, acting, read
from schemagate.kube import Clients


@dataclass
class RoundDecision:
    """The decide step's output: the status' record of runs after this round's Jobs, their Events, and what
    the plan and policy say to do (None when the read stopped before a plan could be made)."""

    runs: dict[str, Any]
    events: list[events_mod.Event] = field(default_factory=list)
    decision: policy.Decision | None = None


def decide(w: World) -> RoundDecision:
    """Record the Jobs' outcomes, then plan and apply the policy (lint, approval, drift)."""
    old = w.old
    if w.jobs is None:
        return RoundDecision({"currentJob": old.get("currentJob"), "lastJob": old.get("lastJob"),
                        "history": old.get("history")})
    runs, evs = st.absorb_jobs(old, w.jobs, w.now)
    if w.stop is not None or w.database is None:
        return RoundDecision(runs, evs)
    st.fill_version_after(runs, w.jobs, w.database)
    inputs = p.Inputs(
        name=w.name, namespace=w.namespace, generation=w.generation, target=w.target, migrations=w.migrations,
        db=w.database, lease=w.lease.state, jobs=tuple(i.state for i in w.jobs), runs=st.prior_runs(runs),
        retry=w.retry, source_key=w.source_key, allow_downgrade=bool(w.spec and w.spec.allow_downgrade))
    assert w.spec is not None
    decision = policy.evaluate(inputs, p.plan(inputs), w.spec, annotations=w.annotations, old=old)
    return RoundDecision(runs, evs + decision.events, decision)


def compose(w: World, d: RoundDecision, acted: Acted) -> dict[str, Any]:
    """The new status (pure); status.rolloutGate is the gate step's."""
    stop = w.stop or acted.blocked
    runs = {**d.runs, "currentJob": acted.current_job} if acted.current_job is not None else d.runs
    fields: dict[str, Any] = {}
    if isinstance(stop, observe.Unreadable):
        phase, desired = st.unreadable(stop.job, stop.message)
        fields["plan"] = w.old.get("plan")
    elif stop is not None:
        phase, desired = st.blocked(stop.reason, stop.message)
        # A plan made this round is kept when its Job could not be created, so its lint Events (posted
        # when status.plan changes) are posted once, not at every resync.
        fields["plan"] = d.decision.plan if acted.blocked is not None and d.decision is not None \
            else w.old.get("plan")
    else:
        assert d.decision is not None and w.database is not None
        phase, desired, fields = policy.for_action(d.decision.action, w.database, w.old)
        fields["plan"] = d.decision.plan
    return st.compose(w.old, w.generation, phase, desired, fields, runs, w.lease_name)


def gate(k: Clients, w: World, new: dict[str, Any], opts: Options) -> gate_reconcile.Result | None:
    """Decide the gated pods against the database version read this round."""
    if not acting(w.namespace, opts):
        return None
    return gate_reconcile.run(k, w.obj, new, w.database, opts.allowed_database_hosts)


def to_post(w: World, d: RoundDecision, acted: Acted, new: dict[str, Any]) -> list[events_mod.Event]:
    """This round's Events on the SchemaMigration: outcomes, policy, the Job started, a Warning when it
    became Stalled (unless a Warning of the same reason already says it: a lint Warning does not hide a
    JobRejected), and one when its Job's pod cannot start (once per cause)."""
    evs = d.events + acted.events
    stalled = st.stalled_event(w.old, new)
    if stalled and not any(e.type == events_mod.WARNING and e.reason == stalled.reason for e in evs):
        evs.append(stalled)
    stuck = st.cannot_start_event(w.old, new)
    if stuck is not None:
        evs.append(stuck)
    return evs


def reconcile(k: Clients, namespace: str, name: str, opts: Options) -> str | None:
    """Bring one SchemaMigration's status (and its Job) in line with the world; returns its Lease name."""
    obj = objects.get(k, api.PLURAL, namespace, name)
    if obj is None:
        return None
    w = read(k, obj, opts)
    d = decide(w)
    acted = act(k, w, d.decision, opts)
    new = compose(w, d, acted)
    gated = gate(k, w, new, opts)
    new["rolloutGate"] = gated.status if gated else w.old.get("rolloutGate")
    objects.write_status(k, api.PLURAL, obj, new)
    events_mod.post(k, events_mod.involved(api.API_VERSION, api.KIND, w.meta), to_post(w, d, acted, new))
    gate_reconcile.post_events(k, gated)
    metrics.STATE.record(namespace, name, w.old, new, started_job=acted.created)
    return w.lease_name
