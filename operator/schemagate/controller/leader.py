"""Leader election on a coordination.k8s.io/v1 Lease: of the operator's replicas only the leader reconciles.

Our own small loop rather than kopf's peering: peering is not an election (peers of equal priority all
pause, or all run with a warning), needs two more CRDs, and bounds nothing. This follows client-go's
leaderelection: the leader renews every `retry_period`; one that has not renewed for `renew_deadline`
steps down (the process exits, as controller-runtime does: a reconcile thread cannot be cancelled
half-way, a fresh process is the clean standby); a standby takes the Lease once its record has not
changed for `lease_duration` by the standby's own clock, so clock skew between nodes does not matter.
Failover after a leader dies without a word (node lost, `kill -9`) is bounded by lease_duration +
retry_period; after a clean stop the leader releases the Lease and a standby takes it within retry_period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from schemagate import lease

log = logging.getLogger(__name__)

DEFAULT_LEASE_NAME = "schemagate-operator-leader"

Role = Literal["create", "take", "renew", "standby"]


@dataclass(frozen=True)
class Timing:
    lease_duration: float = 15.0  # a standby waits this long after the last renewal it saw
    renew_deadline: float = 10.0  # the leader steps down when it could not renew for this long
    retry_period: float = 2.0  # how often everyone looks (and the leader renews)

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(f"leader election needs lease duration ({self.lease_duration:g}s) > renew deadline "
                             f"({self.renew_deadline:g}s) > retry period ({self.retry_period:g}s) > 0")


@dataclass(frozen=True)
class Seen:
    """A Lease record as a standby saw it, and since when (its own clock) it has not changed."""

    record: tuple[str | None, datetime | None, int]  # holder, renewTime, transitions
    since: datetime


def observe(previous: Seen | None, current: lease.Observed | None, now: datetime) -> Seen | None:
    """Pure: the record and since when it is unchanged, after looking at the Lease at `now`."""
    if current is None:
        return None
    record = (current.holder, current.renew_time, current.transitions)
    if previous is not None and previous.record == record:
        return previous
    return Seen(record, now)


def decide(current: lease.Observed | None, seen: Seen | None, me: str, now: datetime, timing: Timing) -> Role:
    """Pure: what to do with the Lease as it is now.

    Expiry is judged by how long the record has stood still here, not by its renewTime (another node's
    clock); leaseDurationSeconds written by the holder wins over our own setting, as in client-go.
    """
    expired = False
    if current is not None:
        duration = current.duration_seconds if current.duration_seconds else timing.lease_duration
        since = seen.since if seen is not None else now
        # No holder: released by a leader that stopped cleanly.
        expired = current.holder is None or now - since > timedelta(seconds=duration)
    return lease.acquiring(current, me, expired=expired) or "standby"


def must_step_down(last_renewed: float, now: float, timing: Timing) -> bool:
    """Pure (monotonic seconds): a leader that could not renew within the deadline stops acting."""
    return now - last_renewed > timing.renew_deadline


def _now() -> datetime:
    return datetime.now(UTC)


class Elector:
    """Runs the election in the background; calls `on_started` once leading and `on_lost` if that ends."""

    def __init__(self, api: Any, namespace: str, name: str, *, me: str, timing: Timing,
                 on_started: Callable[[], None], on_lost: Callable[[], None],
                 clock: Callable[[], datetime] = _now, monotonic: Callable[[], float] = time.monotonic):
        self._api = api  # schemagate.lease._Api: get / create / replace on plain dicts
        self.namespace, self.name, self.me, self.timing = namespace, name, me, timing
        self._on_started, self._on_lost = on_started, on_lost
        self._clock, self._monotonic = clock, monotonic
        self._seen: Seen | None = None
        self._last_renewed: float | None = None
        self.leading = False

    def step(self) -> None:
        """One look at the Lease (blocking: runs in a thread), and the write the decision asks for."""
        try:
            obj = self._api.get(self.namespace, self.name)
            current = None if obj is None else lease.Observed.from_spec(obj.get("spec"))
            now = self._clock()
            self._seen = observe(self._seen, current, now)
            role = decide(current, self._seen, self.me, now, self.timing)
            if role != "standby":
                spec = lease.desired_spec(current, self.me, duration=max(1, round(self.timing.lease_duration)),
                                          now=now)
                if role == "create":
                    self._api.create(self.namespace, self.name, spec)
                else:
                    self._api.replace(self.namespace, obj, spec)
                self._last_renewed = self._monotonic()
                if not self.leading:
                    self.leading = True
                    log.info("leader election: %s now leads (Lease %s/%s, %s)", self.me, self.namespace,
                             self.name, "taken over" if role == "take" else role + "d")
                    self._on_started()
            elif self.leading:
                holder = current.holder if current is not None else None
                log.error("leader election: Lease %s/%s is held by %s; %s stops acting", self.namespace,
                          self.name, holder, self.me)
                self._lose()
                return
        except ApiException as e:
            # 409: someone wrote first; others (a blip, the apiserver restarting): the next step retries.
            log.warning("leader election: Lease %s/%s: %s %s", self.namespace, self.name, e.status, e.reason)
        except Exception as e:  # noqa: BLE001  the apiserver out of reach: retried, and the deadline below still counts
            log.warning("leader election: Lease %s/%s: %s", self.namespace, self.name, e)
        if self.leading and self._last_renewed is not None and must_step_down(
                self._last_renewed, self._monotonic(), self.timing):
            log.error("leader election: %s could not renew Lease %s/%s for %gs; it stops acting", self.me,
                      self.namespace, self.name, self.timing.renew_deadline)
            self._lose()

    def _lose(self) -> None:
        self.leading = False
        self._on_lost()

    async def run(self) -> None:
        while True:
            await asyncio.to_thread(self.step)
            await asyncio.sleep(self.timing.retry_period)

    def release(self) -> None:
        """On a clean stop: hand the Lease over now rather than after lease_duration."""
        if self.leading:
            lease.release(self._api, self.namespace, self.name, self.me)
            self.leading = False
