"""Conditions follow the Kubernetes conventions; lastTransitionTime moves only on a status change."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from schemagate.api import conditions as c
from schemagate.api import reasons

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = T0 + timedelta(minutes=5)


def test_ready_sets_all_three_types_with_generation():
    out = c.apply(None, c.ready("at version 3"), generation=4, now=T0)
    assert [(x["type"], x["status"]) for x in out] == [("Ready", "True"), ("Reconciling", "False"),
                                                        ("Stalled", "False")]
    assert all(x["observedGeneration"] == 4 for x in out)
    assert out[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_transition_time_kept_when_status_unchanged_even_if_reason_changes():
    first = c.apply(None, c.reconciling(reasons.MIGRATING, "job a"), generation=1, now=T0)
    second = c.apply(first, c.reconciling(reasons.WAITING_FOR_LEASE, "held by x"), generation=2, now=T1)
    ready = c.get(second, "Ready")
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert ready["reason"] == "WaitingForLease" and ready["observedGeneration"] == 2


def test_transition_time_moves_when_status_changes():
    first = c.apply(None, c.reconciling(reasons.MIGRATING, "job a"), generation=1, now=T0)
    second = c.apply(first, c.stalled(reasons.MIGRATION_FAILED, "boom"), generation=1, now=T1)
    assert c.get(second, "Stalled")["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    assert c.get(second, "Ready")["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # False → False


def test_foreign_conditions_are_kept_and_messages_bounded():
    existing = [{"type": "Other", "status": "True", "reason": "X", "message": "", "lastTransitionTime": "t"}]
    out = c.apply(existing, c.stalled(reasons.MIGRATION_FAILED, "x" * 5000), generation=1, now=T0)
    assert c.get(out, "Other") == existing[0]
    assert len(c.get(out, "Stalled")["message"]) == c.MESSAGE_LIMIT
