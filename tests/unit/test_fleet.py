"""The SchemaMigrationSet's decisions (controller/fleet.py): canary, window, maxFailures, approval, orphans,
status — as tables over (spec, children, Secrets)."""

from __future__ import annotations

from typing import Any

import pytest

from schemagate.api import reasons
from schemagate.api import migrationset as set_api
from schemagate.api.v1alpha1 import SchemaMigrationSpec
from schemagate.controller import fleet

UID = "set-uid"


def _spec(**strategy: Any) -> set_api.SchemaMigrationSetSpec:
    return set_api.SchemaMigrationSetSpec.model_validate({
        "databases": {"selector": {"matchLabels": {"app": "cs"}}},
        "source": {"configMaps": ["cs-migrations"]}, "template": {"targetVersion": 2},
        "strategy": strategy})


def _child(db: str, phase: str | None, current: int | None = 1, rev: str | None = "CURRENT", owner: str | None = UID,
           generation: int = 1, reason: str = "MigrationFailed", message: str = "00002_x.sql: syntax error"
           ) -> dict[str, Any]:
    spec = _spec()
    conditions = []
    if phase == "Ready":
        conditions = [{"type": "Ready", "status": "True", "reason": "UpToDate"}]
    elif phase == "Failed":
        conditions = [{"type": "Ready", "status": "False", "reason": reason, "message": message},
                      {"type": "Stalled", "status": "True", "reason": reason, "message": message}]
    meta: dict[str, Any] = {"name": fleet.child_name("cs", db), "generation": generation,
                            "labels": {set_api.SET_LABEL: "cs"},
                            "annotations": {set_api.DATABASE_ANNOTATION: db,
                                            set_api.REVISION_ANNOTATION: fleet.revision(spec) if rev == "CURRENT"
                                            else (rev or "")}}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "SchemaMigrationSet", "name": "cs"}]
    status = {"phase": phase, "observedGeneration": generation, "currentVersion": current,
              "targetVersion": 2, "conditions": conditions} if phase else {}
    return {"metadata": meta, "spec": fleet.child_spec(spec, db), "status": status}


def _inputs(dbs: list[str], children: list[dict[str, Any]] = (), annotations: dict[str, str] | None = None,
            labels: dict[str, dict[str, str]] | None = None, old: dict[str, Any] | None = None,
            spec: set_api.SchemaMigrationSetSpec | None = None, **strategy: Any) -> fleet.ObservedSet:
    return fleet.ObservedSet(name="cs", namespace="app", uid=UID, generation=1, spec=spec or _spec(**strategy),
                        annotations=annotations or {}, children=list(children),
                        selected=[fleet.Secret(d, (labels or {}).get(d, {})) for d in dbs], old_status=old or {})


def _started(o: fleet.Outcome) -> list[str]:
    created = [b["metadata"]["annotations"][set_api.DATABASE_ANNOTATION] for b in o.create]
    updated = [p["metadata"]["annotations"][set_api.DATABASE_ANNOTATION] for _, p in o.update
               if "annotations" in p["metadata"]]
    return sorted(created + updated)


def _cond(o: fleet.Outcome, ctype: str) -> tuple[str, str]:
    cond = next(x for x in o.status["conditions"] if x["type"] == ctype)
    return cond["status"], cond["reason"]


DBS = [f"t{k:02d}" for k in range(10)]

# (case, databases, children as (db, phase) with the current revision unless marked, strategy,
#  started this round, phase, Ready reason)
ROLLOUT = [
    ("canary by count goes first, within the window",
     DBS, [], {"canary": {"count": 2}, "maxParallel": 5}, ["t00", "t01"], "Canary", reasons.CANARY),
    ("no canary: the first window", DBS, [], {"maxParallel": 3}, ["t00", "t01", "t02"], "Progressing",
     reasons.PROGRESSING),
    ("the rest wait while a canary migrates",
     DBS, [("t00", "Ready"), ("t01", "Migrating")], {"canary": {"count": 2}, "maxParallel": 5}, [], "Canary",
     reasons.CANARY),
    ("canary Ready: the rest, at most maxParallel",
     DBS, [("t00", "Ready"), ("t01", "Ready")], {"canary": {"count": 2}, "maxParallel": 3},
     ["t02", "t03", "t04"], "Progressing", reasons.PROGRESSING),
    ("the window slides: one slot free",
     DBS, [("t00", "Ready"), ("t01", "Migrating"), ("t02", "Pending")], {"maxParallel": 3}, ["t03"],
     "Progressing", reasons.PROGRESSING),
    ("a failure below maxFailures keeps going",
     DBS, [("t00", "Ready"), ("t01", "Failed")], {"maxParallel": 2, "maxFailures": 2}, ["t02", "t03"],
     "Progressing", reasons.PROGRESSING),
    ("maxFailures reached: nothing new starts",
     DBS, [("t00", "Ready"), ("t01", "Failed"), ("t02", "Migrating")], {"maxParallel": 5, "maxFailures": 1}, [],
     "Halted", reasons.MAX_FAILURES_REACHED),
    ("a canary failed: the rest wait even under maxFailures",
     DBS, [("t00", "Failed"), ("t01", "Ready")], {"canary": {"count": 2}, "maxFailures": 5}, [], "Halted",
     reasons.CANARY_FAILED),
    ("all updated and Ready", ["t00", "t01"], [("t00", "Ready"), ("t01", "Ready")], {}, [], "Ready",
     "UpToDate"),
    ("everything released, one failed under maxFailures: Failed",
     ["t00", "t01"], [("t00", "Ready"), ("t01", "Failed")], {"maxFailures": 3}, [], "Failed",
     reasons.DATABASES_FAILED),
    ("no databases", [], [], {}, [], "Pending", reasons.NO_DATABASES),
    ("a database added later is migrated", ["t00", "t01", "t02"], [("t00", "Ready"), ("t01", "Ready")],
     {"canary": {"count": 1}}, ["t02"], "Progressing", reasons.PROGRESSING),
]


@pytest.mark.parametrize("case,dbs,children,strategy,started,phase,reason", ROLLOUT, ids=[r[0] for r in ROLLOUT])
def test_rollout_order(case, dbs, children, strategy, started, phase, reason):
    o = fleet.decide(_inputs(dbs, [_child(d, ph) for d, ph in children], **strategy))
    assert _started(o) == started
    assert o.status["phase"] == phase
    assert _cond(o, "Ready")[1] == reason


def test_outdated_children_stay_until_released_and_then_get_the_new_template():
    old = [_child(d, "Ready", rev="old") for d in DBS[:4]]
    o = fleet.decide(_inputs(DBS[:4], old, canary={"count": 1}, maxParallel=2))
    assert _started(o) == ["t00"]  # only the canary's spec changes; t01..t03 keep theirs
    [(name, patch)] = o.update
    assert name == "cs-t00" and patch["spec"]["targetVersion"] == 2
    assert o.status["phases"] == {"Outdated": 3, "Pending": 1}
    assert o.status["updated"] == 1


def test_canary_by_label_on_the_selected_secrets():
    o = fleet.decide(_inputs(DBS[:4], labels={"t03": {"canary": "yes"}},
                             canary={"selector": {"matchLabels": {"canary": "yes"}}}))
    assert _started(o) == ["t03"] and o.status["canaries"] == ["t03"]


@pytest.mark.parametrize("annotation,started,state,phase", [
    (None, [], "Pending", "AwaitingApproval"),
    ("wrong", [], "Stale", "AwaitingApproval"),
    ("HASH", ["t02", "t03"], "Approved", "Progressing"),
])
def test_manual_gate_between_canary_and_the_rest(annotation, started, state, phase):
    children = [_child("t00", "Ready", current=2), _child("t01", "Ready", current=2)]
    first = fleet.decide(_inputs(DBS[:4], children, canary={"count": 2}, approval="Manual"))
    hash_ = first.status["approval"]["hash"]
    given = {set_api.APPROVE_ANNOTATION: hash_ if annotation == "HASH" else annotation} if annotation else {}
    o = fleet.decide(_inputs(DBS[:4], children, annotations=given, canary={"count": 2}, approval="Manual"))
    assert _started(o) == started
    assert o.status["approval"] == {"hash": hash_, "state": state}
    assert o.status["phase"] == phase
    if phase == "AwaitingApproval":
        assert _cond(o, "Ready") == ("False", "AwaitingApproval") and _cond(o, "Stalled")[0] == "False"
        assert f"schemagate.io/approve={hash_}" in next(
            x for x in o.status["conditions"] if x["type"] == "Ready")["message"]


def test_an_approval_names_the_canary_result_it_saw():
    at1 = [_child("t00", "Ready", current=1)]
    at2 = [_child("t00", "Ready", current=2)]
    h1 = fleet.decide(_inputs(DBS[:3], at1, canary={"count": 1}, approval="Manual")).status["approval"]["hash"]
    h2 = fleet.decide(_inputs(DBS[:3], at2, canary={"count": 1}, approval="Manual")).status["approval"]["hash"]
    assert h1 != h2


def test_a_database_that_leaves_the_selection_is_orphaned_not_deleted():
    children = [_child("t00", "Ready"), _child("gone", "Ready")]
    o = fleet.decide(_inputs(["t00"], children))
    assert o.orphan == [("cs-gone", {"metadata": {"ownerReferences": None, "labels": {set_api.SET_LABEL: None}}})]
    assert o.status["databases"] == 1 and o.status["phase"] == "Ready"


def test_an_orphan_whose_database_comes_back_is_adopted():
    back = _child("t00", "Ready", owner=None)
    o = fleet.decide(_inputs(["t00"], [back]))
    assert [n for n, p in o.update] == ["cs-t00"]
    assert o.update[0][1]["metadata"]["ownerReferences"][0]["uid"] == UID


def test_a_foreign_schemamigration_of_the_childs_name_is_a_conflict_and_counts_as_failed():
    foreign = _child("t00", "Ready", owner="someone-else")
    o = fleet.decide(_inputs(["t00", "t01"], [foreign], maxFailures=2))
    assert not o.update and _started(o) == ["t01"]
    assert o.status["failing"][0]["reason"] == reasons.NAME_CONFLICT


def test_status_counts_versions_and_bounded_failing_list():
    children = [_child(d, "Failed", current=1) for d in DBS[:7]] + [_child("t07", "Ready", current=2)]
    o = fleet.decide(_inputs(DBS, children, maxFailures=10, maxParallel=1))
    s = o.status
    assert (s["databases"], s["ready"], s["failed"]) == (10, 1, 7)
    assert (s["lowestVersion"], s["highestVersion"], s["targetVersion"]) == (1, 2, 2)
    assert [f["database"] for f in s["failing"]] == DBS[:5] and s["failingOmitted"] == 2
    assert s["failing"][0] == {"database": "t00", "migration": "cs-t00", "reason": "MigrationFailed",
                               "message": "00002_x.sql: syntax error"}
    assert s["phases"] == {"Failed": 7, "NotStarted": 1, "Pending": 1, "Ready": 1}


def test_a_child_not_yet_observed_at_its_generation_is_in_flight_not_ready():
    stale = _child("t00", "Ready", generation=2)
    stale["status"]["observedGeneration"] = 1
    o = fleet.decide(_inputs(["t00", "t01"], [stale], maxParallel=1))
    assert _started(o) == [] and o.status["ready"] == 0


def test_children_are_valid_schemamigrations_with_owner_label_and_deterministic_names():
    o = fleet.decide(_inputs(["t00"]))
    [body] = o.create
    SchemaMigrationSpec.model_validate(body["spec"])
    assert body["spec"]["database"] == {"secretRef": {"name": "t00", "key": "url"}, "table": "goose_db_version"}
    assert body["metadata"]["ownerReferences"][0] == {
        "apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigrationSet", "name": "cs", "uid": UID,
        "controller": True, "blockOwnerDeletion": True}
    assert "rolloutGate" not in body["spec"]  # the set gates, not each child
    long = fleet.child_name("a" * 40, "tenant-" + "b" * 40)
    assert len(long) <= 63 and long == fleet.child_name("a" * 40, "tenant-" + "b" * 40)
    assert long != fleet.child_name("a" * 40, "tenant-" + "b" * 39 + "c")


def test_revision_ignores_the_strategy():
    assert fleet.revision(_spec(maxParallel=1)) == fleet.revision(_spec(maxParallel=9))


@pytest.mark.parametrize("children,names,expected", [
    ([_child("t00", "Ready", current=2), _child("t01", "Ready", current=1)], ["t00", "t01"], (1, None)),
    ([_child("t00", "Ready", current=2)], ["t00", "t01"], (None, "1 of 2 databases report no version yet (t01)")),
    ([], [], (None, "the set has no databases")),
])
def test_gate_view_is_the_lowest_version_over_every_database(children, names, expected):
    versions = [ch["status"]["currentVersion"] for ch in children]
    status = {"lowestVersion": min(versions) if versions else None}
    assert fleet.gate_view(status, children, names) == expected


def test_the_example_is_a_valid_set_whose_canary_goes_first():
    import yaml
    from pathlib import Path

    docs = list(yaml.safe_load_all((Path(__file__).resolve().parents[2] / "examples" /
                                    "config-server-schemamigrationset.yaml").read_text()))
    [doc] = [d for d in docs if d["kind"] == "SchemaMigrationSet"]
    spec = set_api.SchemaMigrationSetSpec.model_validate(doc["spec"])
    secrets = [fleet.Secret(d["metadata"]["name"], d["metadata"]["labels"]) for d in docs if d["kind"] == "Secret"]
    i = fleet.ObservedSet(name="config-server", namespace="config-server", uid=UID, generation=1, spec=spec,
                     annotations={}, children=[], selected=secrets)
    o = fleet.decide(i)
    assert _started(o) == ["tenant-acme-db"] and o.status["databases"] == 3
    assert [b["metadata"]["name"] for b in o.create] == ["config-server-tenant-acme-db"]
