"""SchemaMigrations in every phase, as the operator writes them: the real reconcile runs in the unit-level
world (tests/unit/reconcile_world.py) and what it patched is taken as is; only times are pinned so the
checked-in testdata stays stable. `python -m tests.gitops.phases` rewrites hack/argocd's testdata."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from schemagate.controller import decide as p

from tests.unit import reconcile_world as rw

REPO = Path(__file__).resolve().parents[2]
HEALTH = REPO / "hack" / "argocd" / "resource_customizations" / "schemagate.io" / "SchemaMigration"
TESTDATA = HEALTH / "testdata"
PINNED = "2026-01-01T00:00:00Z"
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _pin_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _pin_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pin_times(v) for v in value]
    if isinstance(value, str) and _TIME.match(value):
        return PINNED
    return value


def _ready(w: rw.World) -> None:
    w.reconcile()
    w.finish("Succeeded", rw.OK)
    w.reconcile()


def _migrating(w: rw.World) -> None:
    w.reconcile()


def _waiting(w: rw.World) -> None:
    w.lease = p.LeaseState("shop/billing-g4-1c2d3e4f", False)
    w.reconcile()


def _awaiting(w: rw.World) -> None:
    w.reconcile()


def _failed(w: rw.World) -> None:
    w.reconcile()
    w.finish("Failed", rw.FAILED)
    w.reconcile()


def _secret_missing(w: rw.World) -> None:
    w.object["spec"]["database"]["secretRef"]["name"] = "no-such-secret"
    w.reconcile()


def _spec_changed(w: rw.World) -> None:
    _ready(w)
    w.object["metadata"]["generation"] = 2  # kubectl apply of a new target, not yet reconciled


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def _ready_message(obj: dict[str, Any]) -> str:
    return _condition(obj, "Ready")["message"]


def _reconciling_message(obj: dict[str, Any]) -> str:
    return _condition(obj, "Reconciling")["message"]


def _stalled_message(obj: dict[str, Any]) -> str:
    stalled = _condition(obj, "Stalled")
    return f"{stalled['reason']}: {stalled['message']}"


def _unobserved(obj: dict[str, Any]) -> str:
    return f"Waiting for the schemagate operator to look at generation {obj['metadata']['generation']}"


# file → (spec over the default, how to get there, kstatus's status, Argo CD's health status and message)
PHASES: dict[str, tuple[dict[str, Any], Callable[[rw.World], None], str, str, Callable[[dict[str, Any]], str]]] = {
    "ready.yaml": ({}, _ready, "Current", "Healthy", _ready_message),
    "migrating.yaml": ({}, _migrating, "InProgress", "Progressing", _reconciling_message),
    "waiting_for_lease.yaml": ({}, _waiting, "InProgress", "Progressing", _reconciling_message),
    "awaiting_approval.yaml": ({"approval": "Manual"}, _awaiting, "InProgress", "Suspended", _ready_message),
    "migration_failed.yaml": ({}, _failed, "Failed", "Degraded", _stalled_message),
    "secret_not_found.yaml": ({}, _secret_missing, "Failed", "Degraded", _stalled_message),
    "spec_changed.yaml": ({}, _spec_changed, "InProgress", "Progressing", _unobserved),
}


def health_tests(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """health_test.yaml in Argo CD's form: what each testdata object must read as."""
    return {"tests": [{"healthStatus": {"status": PHASES[f][3], "message": PHASES[f][4](obj)},
                       "inputPath": f"testdata/{f}"} for f, obj in objects.items()]}


def generate(monkeypatch: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for file, (spec, drive, *_) in PHASES.items():
        with monkeypatch.context() as m:
            world = rw.World(m, spec=copy.deepcopy(spec))
            drive(world)
        out[file] = _pin_times(world.object)
    return out


def dump(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=False, width=100)


def load(file: str) -> dict[str, Any]:
    return yaml.safe_load((TESTDATA / file).read_text())


if __name__ == "__main__":
    import pytest

    mp = pytest.MonkeyPatch()
    try:
        objects = generate(mp)
        for name, obj in objects.items():
            (TESTDATA / name).write_text(dump(obj))
            print(f"wrote {TESTDATA / name}")
        (HEALTH / "health_test.yaml").write_text(dump(health_tests(objects)))
        print(f"wrote {HEALTH / 'health_test.yaml'}")
    finally:
        mp.undo()
