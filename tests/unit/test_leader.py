"""Leader election among the operator's replicas: take a free or dead Lease, renew our own, stand by
behind a live leader, step down when renewing fails, and never judge expiry by another node's clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from kubernetes.client.exceptions import ApiException

from schemagate.controller import leader
from schemagate.controller.leader import Elector, Seen, Timing, decide, must_step_down, observe
from schemagate.lease import Observed

from tests.unit.test_lease import FakeLeases

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TIMING = Timing(lease_duration=15, renew_deadline=10, retry_period=2)


def held_by(holder, renewed=T0, duration=15, transitions=0):
    return Observed(holder, renewed, duration, transitions)


def seen_at(lease, since):
    return observe(None, lease, since)


@pytest.mark.parametrize("current, seen_since, now, role", [
    (None, None, T0, "create"),
    (held_by("me"), T0, T0 + timedelta(seconds=100), "renew"),  # ours: renew, however late
    (held_by(None), T0, T0, "take"),  # released by a leader that stopped cleanly: no wait
    (held_by("other"), T0, T0 + timedelta(seconds=14), "standby"),
    (held_by("other"), T0, T0 + timedelta(seconds=15), "standby"),  # exactly the duration: still live
    (held_by("other"), T0, T0 + timedelta(seconds=16), "take"),
    # The holder's leaseDurationSeconds wins over ours (a leader configured for 40 s is given 40 s).
    (held_by("other", duration=40), T0, T0 + timedelta(seconds=30), "standby"),
    (held_by("other", duration=40), T0, T0 + timedelta(seconds=41), "take"),
    (held_by("other", duration=None), T0, T0 + timedelta(seconds=16), "take"),
])
def test_decide(current, seen_since, now, role):
    seen = seen_at(current, seen_since) if current is not None else None
    assert decide(current, seen, "me", now, TIMING) == role


def test_a_lease_seen_for_the_first_time_is_live_whatever_its_renew_time_says():
    # renewTime an hour old by our clock: the leader's clock may be behind ours; only watching it stand
    # still for a lease duration says it is dead.
    stale = held_by("other", renewed=T0 - timedelta(hours=1))
    assert decide(stale, observe(None, stale, T0), "me", T0, TIMING) == "standby"


def test_a_renewal_restarts_the_wait():
    first = held_by("other", renewed=T0)
    seen = observe(None, first, T0)
    renewed = held_by("other", renewed=T0 + timedelta(seconds=10))
    seen = observe(seen, renewed, T0 + timedelta(seconds=12))
    assert seen == Seen(("other", T0 + timedelta(seconds=10), 0), T0 + timedelta(seconds=12))
    assert decide(renewed, seen, "me", T0 + timedelta(seconds=20), TIMING) == "standby"
    assert decide(renewed, seen, "me", T0 + timedelta(seconds=28), TIMING) == "take"


def test_an_unchanged_record_keeps_its_first_sighting():
    lease = held_by("other")
    seen = observe(None, lease, T0)
    assert observe(seen, lease, T0 + timedelta(seconds=9)) is seen
    assert observe(seen, None, T0) is None


@pytest.mark.parametrize("since_renewal, step_down", [(0, False), (9.9, False), (10, False), (10.1, True)])
def test_must_step_down(since_renewal, step_down):
    assert must_step_down(100.0, 100.0 + since_renewal, TIMING) is step_down


def test_timing_must_leave_room_to_renew_before_anyone_takes_over():
    with pytest.raises(ValueError, match="lease duration"):
        Timing(lease_duration=10, renew_deadline=10, retry_period=2)


class Clock:
    def __init__(self):
        self.t = 0.0

    def now(self):
        return T0 + timedelta(seconds=self.t)

    def mono(self):
        return self.t


def elector(api, me, clock, events):
    return Elector(api, "ops", leader.DEFAULT_LEASE_NAME, me=me, timing=TIMING,
                   on_started=lambda: events.append((me, "started")), on_lost=lambda: events.append((me, "lost")),
                   clock=clock.now, monotonic=clock.mono)


def test_one_leader_and_a_bounded_failover_when_it_dies():
    api, clock, events = FakeLeases(), Clock(), []
    a, b = elector(api, "a", clock, events), elector(api, "b", clock, events)
    a.step()
    b.step()
    assert (a.leading, b.leading) == (True, False) and events == [("a", "started")]
    for _ in range(20):  # a renews every retry period: b never takes over
        clock.t += 2
        a.step()
        b.step()
    assert not b.leading
    died = clock.t  # a is killed: no release, no more renewals
    while not b.leading:
        clock.t += 2
        b.step()
    assert TIMING.lease_duration < clock.t - died <= TIMING.lease_duration + TIMING.retry_period
    spec = api.get("ops", leader.DEFAULT_LEASE_NAME)["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


def test_a_clean_stop_hands_over_at_the_next_look():
    api, clock, events = FakeLeases(), Clock(), []
    a, b = elector(api, "a", clock, events), elector(api, "b", clock, events)
    a.step()
    b.step()
    a.release()
    clock.t += 2
    b.step()
    assert b.leading and not a.leading


class Unreachable(FakeLeases):
    def __init__(self):
        super().__init__()
        self.down = False

    def get(self, namespace, name):
        if self.down:
            raise ApiException(status=503, reason="Service Unavailable")
        return super().get(namespace, name)


def test_a_leader_that_cannot_renew_steps_down_before_anyone_could_take_over():
    api, clock, events = Unreachable(), Clock(), []
    a = elector(api, "a", clock, events)
    a.step()
    api.down = True
    while a.leading:
        clock.t += 2
        a.step()
    assert events == [("a", "started"), ("a", "lost")]
    assert clock.t < TIMING.lease_duration  # stopped acting before a standby may start


def test_a_leader_that_finds_another_holder_stops_at_once():
    api, clock, events = FakeLeases(), Clock(), []
    a = elector(api, "a", clock, events)
    a.step()
    obj = api.get("ops", leader.DEFAULT_LEASE_NAME)
    api.replace("ops", obj, {"holderIdentity": "b"})
    a.step()
    assert events == [("a", "started"), ("a", "lost")]
