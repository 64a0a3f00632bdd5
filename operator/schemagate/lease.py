"""A coordination.k8s.io/v1 Lease per database: who may migrate it now, visible to the whole cluster.

The runner holds it while it works (acquire, renew in a background thread, release). The Postgres
advisory lock stays the fence inside the database: a paused holder whose Lease was taken over still
cannot run concurrently. Takeover of a stale holder follows client-go's leader election and
CloudNativePG: a Lease whose renewTime + leaseDurationSeconds lies in the past is free.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

log = logging.getLogger(__name__)

LEASE_PREFIX = "schemagate-db-"
DEFAULT_WAIT_SECONDS = 600.0
# The holder's progress and last result, as JSON (the runner's result document plus "holder"). It outlives
# the pod: a Job controller that deletes the pod at its deadline, or a pod deleted with grace 0, takes the
# termination message with it, and this is what is left to say which file was running.
RUN_ANNOTATION = "schemagate.io/run"


class LeaseUnavailable(Exception):
    def __init__(self, message: str, holder: str | None = None):
        super().__init__(message)
        self.message = message
        self.holder = holder


def lease_name(host: str, port: int, dbname: str, table: str) -> str:
    """Named after the database, not the custom resource: two SchemaMigrations on one database serialise."""
    identity = f"{host.lower()}:{port}/{dbname}/{table.lower()}"
    return LEASE_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:16]


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def micro_time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Observed:
    """The Lease as a holder sees it (from a dict in API form: camelCase keys)."""

    holder: str | None
    renew_time: datetime | None
    duration_seconds: int | None
    transitions: int

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> Observed:
        spec = spec or {}
        return cls(spec.get("holderIdentity") or None, _time(spec.get("renewTime") or spec.get("acquireTime")),
                   spec.get("leaseDurationSeconds"), int(spec.get("leaseTransitions") or 0))

    def expired(self, now: datetime) -> bool:
        if self.holder is None:
            return True
        if self.renew_time is None or self.duration_seconds is None:
            return True
        return self.renew_time + timedelta(seconds=self.duration_seconds) < now


# What acquiring the Lease means as it is now: held is someone else's live Lease (leader election calls it
# standby, leader.Role).
Acquire = Literal["create", "take", "renew", "held"]


def acquiring(current: Observed | None, me: str, *, expired: bool) -> Literal["create", "take", "renew"] | None:
    """Pure: what acquiring means for the Lease as it is now, its expiry judged by the caller (by renewTime
    here, by how long the record stood still for leader election); None while someone else holds it."""
    if current is None:
        return "create"
    if current.holder == me:
        return "renew"
    if expired:
        return "take"
    return None


def decide(current: Observed | None, me: str, now: datetime) -> Acquire:
    """Pure: what acquiring means for the Lease as it is now, expired by its renewTime."""
    return acquiring(current, me, expired=current is not None and current.expired(now)) or "held"


def desired_spec(current: Observed | None, me: str, *, duration: int, now: datetime) -> dict[str, Any]:
    taking = current is None or current.holder != me
    spec: dict[str, Any] = {"holderIdentity": me, "leaseDurationSeconds": duration, "renewTime": micro_time(now)}
    if taking:
        spec["acquireTime"] = micro_time(now)
        # As client-go counts: every acquisition of an existing Lease by a new holder is a transition,
        # also after a release (the normal hand-over from one migration Job to the next).
        spec["leaseTransitions"] = current.transitions + 1 if current is not None else 0
    return spec


# Every Lease call gives up after this long (connect and read each). Without it a call that the apiserver
# never answers (one in flight when it went down) blocks until the connection dies: a renewer that then
# cannot try again, a run held at its end by the release. Its callers already retry (renewer, election).
REQUEST_TIMEOUT_SECONDS = 5.0


class _Api:
    """The few Lease calls we make, on plain dicts (exact MicroTime strings, no model conversions)."""

    def __init__(self, api_client: Any | None = None, timeout: float = REQUEST_TIMEOUT_SECONDS):
        from kubernetes import client

        from schemagate import kube

        # Its own client by default: no retries inside a call, which would multiply the timeout.
        self._api = client.CoordinationV1Api(api_client or kube.api_client(retries=0))
        self._client = self._api.api_client
        self._timeout = timeout

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        from schemagate import kube

        return kube.read_json(self._api.read_namespaced_lease, name, namespace, _request_timeout=self._timeout)

    def create(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {"app.kubernetes.io/managed-by": "schemagate"}},
                "spec": spec}
        self._api.create_namespaced_lease(namespace, body,  # type: ignore[arg-type]  # dicts go as-is
                                          _request_timeout=self._timeout)

    def replace(self, namespace: str, obj: dict[str, Any], spec: dict[str, Any],
                annotations: dict[str, str] | None = None) -> None:
        """Compare-and-swap on resourceVersion: a concurrent writer gets 409, never a lost update."""
        body = dict(obj, spec={**(obj.get("spec") or {}), **spec})
        if annotations:
            meta = dict(obj.get("metadata") or {})
            meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
            body["metadata"] = meta
        self._api.replace_namespaced_lease(obj["metadata"]["name"], namespace,
                                           body,  # type: ignore[arg-type]  # dicts go as-is
                                           _request_timeout=self._timeout)


def _forbidden(namespace: str, name: str) -> str:
    return (f"this pod's ServiceAccount may not use Lease {namespace}/{name}: grant it get, create and update "
            f"on leases (coordination.k8s.io) in namespace {namespace}")


def _now() -> datetime:
    return datetime.now(UTC)


def try_acquire(api: _Api, namespace: str, name: str, me: str, duration: int,
                *, now: Callable[[], datetime] = _now, note: str | None = None,
                renew_only: bool = False) -> Observed | None:
    """One attempt: None when acquired (or renewed), else the Lease as it is, held by someone else (or, with
    `renew_only`, free: a renewer never takes a released or lapsed Lease back, so a renewal that outlived
    its run's release cannot hold the Lease for a run that has ended; a Lease deleted meanwhile it makes
    again)."""
    from kubernetes.client.exceptions import ApiException

    try:
        obj = api.get(namespace, name)
    except ApiException as e:
        if e.status in (401, 403):
            raise LeaseUnavailable(_forbidden(namespace, name)) from None
        raise
    current = None if obj is None else Observed.from_spec(obj.get("spec"))
    t = now()
    decision = decide(current, me, t)
    if decision == "held" or (renew_only and decision == "take"):
        return current
    try:
        if decision == "create":
            api.create(namespace, name, desired_spec(None, me, duration=duration, now=t))
        else:
            assert obj is not None
            api.replace(namespace, obj, desired_spec(current, me, duration=duration, now=t),
                        {RUN_ANNOTATION: note} if note is not None else None)
    except ApiException as e:
        if e.status in (401, 403):
            raise LeaseUnavailable(_forbidden(namespace, name)) from None
        if e.status in (409, 422):  # someone else wrote first; look again
            return Observed.from_spec(None) if current is None else current
        raise
    return None


def release(api: _Api, namespace: str, name: str, holder: str, *, note: str | None = None) -> bool:
    """Clear the Lease if `holder` still holds it, so the next taker has it at once instead of after its
    duration; whether it was cleared. The holder itself at its end (with its last `note`), or the operator
    for a holder known to be dead (its Job finished or deleted). Compare-and-swap: a taker that wrote
    meanwhile wins, and a Lease taken over (a holder too slow renewing) is not the holder's to release."""
    from kubernetes.client.exceptions import ApiException

    obj = api.get(namespace, name)
    if obj is None or Observed.from_spec(obj.get("spec")).holder != holder:
        return False
    try:
        # client-go releases by clearing the holder; the object stays, its transition count with it.
        api.replace(namespace, obj, {"holderIdentity": None, "leaseDurationSeconds": 1,
                                     "renewTime": micro_time(_now())},
                    {RUN_ANNOTATION: note} if note is not None else None)
    except ApiException as e:
        if e.status == 409:
            return False
        raise
    return True


class _Renewer(threading.Thread):
    def __init__(self, api: _Api, namespace: str, name: str, me: str, duration: int):
        super().__init__(name=f"lease-renew-{name}", daemon=True)
        self._args = (api, namespace, name, me, duration)
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self.lost = False
        self.last_note: str | None = None  # the newest progress; written with the next renewal
        self._written: str | None = None

    def note(self, text: str) -> None:
        """Put `text` on the Lease with a renewal now, in this thread: the run never waits on the API."""
        self.last_note = text
        self._wake.set()

    def run(self) -> None:
        api, namespace, name, me, duration = self._args
        interval = max(1.0, duration / 3)
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop_event.is_set():
                return
            note = self.last_note
            try:
                other = try_acquire(api, namespace, name, me, duration, renew_only=True,
                                    note=note if note != self._written else None)
                if other is None:
                    self._written = note
            except Exception as e:  # noqa: BLE001  a blip must not kill the run; the next tick tries again
                log.warning("renewing lease %s/%s failed: %s", namespace, name, e)
                continue
            if other is not None and other.holder not in (None, me):
                self.lost = True
                log.warning("lease %s/%s was taken over by %s", namespace, name, other.holder)

    def stop(self) -> None:
        # Not waited for long: a renewal in flight cannot outlast the release (renew_only, and the release's
        # compare-and-swap), and one the apiserver does not answer must not hold the run's end.
        self._stop_event.set()
        self._wake.set()
        self.join(timeout=1)


@contextmanager
def held_lease(*, name: str, namespace: str, holder: str, duration_seconds: int,
               wait_seconds: float = DEFAULT_WAIT_SECONDS, api_client: Any | None = None
               ) -> Iterator[Callable[[str], None]]:
    """Hold the Lease for the body: acquire (waiting up to wait_seconds), renew meanwhile, release after.

    Yields `note(text)`: the body's progress, kept on the Lease (RUN_ANNOTATION), the last one also on release.
    Raises LeaseUnavailable naming the holder when it stays held by someone else.
    """
    api = _Api(api_client)
    deadline = time.monotonic() + wait_seconds
    poll = min(2.0, max(0.2, duration_seconds / 5))
    while True:
        other = try_acquire(api, namespace, name, holder, duration_seconds)
        if other is None:
            break
        if time.monotonic() >= deadline:
            raise LeaseUnavailable(f"lease {namespace}/{name} is held by {other.holder or 'someone else'}; "
                                   f"gave up after {wait_seconds:g}s", other.holder)
        time.sleep(poll)
    renewer = _Renewer(api, namespace, name, holder, duration_seconds)
    renewer.start()
    try:
        yield renewer.note
    finally:
        renewer.stop()
        try:
            release(api, namespace, name, holder, note=renewer.last_note)
        except Exception as e:  # noqa: BLE001  the Lease expires by itself; the run's own outcome matters more
            log.warning("releasing lease %s/%s failed: %s", namespace, name, e)
