"""The database Lease: acquire when free or stale, never steal a live one, release only our own."""

from __future__ import annotations

import copy
import threading
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes.client.exceptions import ApiException

from schemagate import lease
from schemagate.lease import LeaseUnavailable, Observed, decide, held_lease, lease_name, try_acquire

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class FakeLeases:
    """In-memory Lease API with the apiserver's compare-and-swap on resourceVersion."""

    def __init__(self):
        self.objects: dict[tuple[str, str], dict] = {}
        self.lock = threading.Lock()

    def get(self, namespace, name):
        with self.lock:
            obj = self.objects.get((namespace, name))
            return copy.deepcopy(obj)

    def create(self, namespace, name, spec):
        with self.lock:
            if (namespace, name) in self.objects:
                raise ApiException(status=409)
            self.objects[(namespace, name)] = {"metadata": {"name": name, "resourceVersion": "1"}, "spec": dict(spec)}

    def replace(self, namespace, obj, spec, annotations=None):
        with self.lock:
            stored = self.objects[(namespace, obj["metadata"]["name"])]
            if stored["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                raise ApiException(status=409)
            if annotations:
                stored["metadata"]["annotations"] = {**stored["metadata"].get("annotations", {}), **annotations}
            stored["spec"] = {k: v for k, v in {**stored["spec"], **spec}.items() if v is not None}
            stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)


def held_by(holder, renewed, duration=15):
    return Observed(holder, renewed, duration, 0)


def test_lease_name_is_the_database_identity_not_the_resource():
    a = lease_name("DB.example", 5432, "app", "goose_db_version")
    assert a == lease_name("db.example", 5432, "app", "goose_db_version")
    assert a != lease_name("db.example", 5432, "app", "other_table")
    assert a.startswith("schemagate-db-") and len(a) <= 63


@pytest.mark.parametrize("current, decision", [
    (None, "create"),
    (held_by("me", T0), "renew"),
    (held_by("other", T0 - timedelta(seconds=5)), "held"),
    (held_by("other", T0 - timedelta(seconds=16)), "take"),
    (held_by(None, T0), "take"),
])
def test_decide(current, decision):
    assert decide(current, "me", T0) == decision


def test_acquire_creates_then_others_wait():
    api = FakeLeases()
    assert try_acquire(api, "ns", "l", "a", 15, now=lambda: T0) is None
    other = try_acquire(api, "ns", "l", "b", 15, now=lambda: T0 + timedelta(seconds=3))
    assert other is not None and other.holder == "a"


def test_stale_holder_is_taken_over_after_the_lease_duration():
    api = FakeLeases()
    try_acquire(api, "ns", "l", "a", 15, now=lambda: T0)
    assert try_acquire(api, "ns", "l", "b", 15, now=lambda: T0 + timedelta(seconds=16)) is None
    spec = api.get("ns", "l")["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


def test_held_lease_releases_at_the_end_and_on_error(monkeypatch):
    api = FakeLeases()
    monkeypatch.setattr(lease, "_Api", lambda client=None: api)
    with held_lease(name="l", namespace="ns", holder="a", duration_seconds=15):
        assert api.get("ns", "l")["spec"]["holderIdentity"] == "a"
    assert "holderIdentity" not in api.get("ns", "l")["spec"]
    with pytest.raises(RuntimeError):
        with held_lease(name="l", namespace="ns", holder="b", duration_seconds=15):
            raise RuntimeError("migration failed")
    assert "holderIdentity" not in api.get("ns", "l")["spec"]


def test_held_lease_gives_up_naming_the_holder(monkeypatch):
    api = FakeLeases()
    monkeypatch.setattr(lease, "_Api", lambda client=None: api)
    try_acquire(api, "ns", "l", "ns/other-job", 3600)
    with pytest.raises(LeaseUnavailable, match="held by ns/other-job") as err:
        with held_lease(name="l", namespace="ns", holder="me", duration_seconds=15, wait_seconds=0):
            pass
    assert err.value.holder == "ns/other-job"


def test_release_leaves_someone_elses_lease_alone():
    api = FakeLeases()
    try_acquire(api, "ns", "l", "b", 15)
    lease.release(api, "ns", "l", "a")
    assert api.get("ns", "l")["spec"]["holderIdentity"] == "b"


def test_missing_rbac_is_a_clear_lease_error(monkeypatch):
    class Forbidden(FakeLeases):
        def get(self, namespace, name):
            raise ApiException(status=403)

    monkeypatch.setattr(lease, "_Api", lambda client=None: Forbidden())
    with pytest.raises(LeaseUnavailable, match="may not use Lease ns/l: grant it get, create and update"):
        with held_lease(name="l", namespace="ns", holder="me", duration_seconds=15):
            pass


def test_every_new_holder_counts_as_a_transition_also_after_a_release():
    api = FakeLeases()
    try_acquire(api, "ns", "l", "ns/job-1", 15, now=lambda: T0)
    assert api.get("ns", "l")["spec"]["leaseTransitions"] == 0
    lease.release(api, "ns", "l", "ns/job-1")
    try_acquire(api, "ns", "l", "ns/job-2", 15, now=lambda: T0 + timedelta(seconds=1))
    try_acquire(api, "ns", "l", "ns/job-2", 15, now=lambda: T0 + timedelta(seconds=2))  # a renewal is none
    spec = api.get("ns", "l")["spec"]
    assert spec["holderIdentity"] == "ns/job-2" and spec["leaseTransitions"] == 1


def test_the_holders_progress_is_put_on_the_lease_and_its_last_word_stays_after_release(monkeypatch):
    """A pod deleted at the Job's deadline (or with grace 0) takes its termination message along: the Lease
    is what still says which file was running."""
    import time as time_mod

    from schemagate import lease as lease_mod

    api = FakeLeases()
    monkeypatch.setattr(lease_mod, "_Api", lambda _client=None: api)
    with held_lease(name="l", namespace="ns", holder="ns/job-1", duration_seconds=3) as note:
        note('{"running":{"file":"00003_x.sql"}}')
        deadline = time_mod.monotonic() + 5
        while time_mod.monotonic() < deadline and "annotations" not in api.objects[("ns", "l")]["metadata"]:
            time_mod.sleep(0.05)
        assert api.objects[("ns", "l")]["metadata"]["annotations"][lease_mod.RUN_ANNOTATION] == \
            '{"running":{"file":"00003_x.sql"}}'
        note('{"ok":false,"error":{"reason":"Interrupted"}}')
    stored = api.objects[("ns", "l")]
    assert stored["spec"].get("holderIdentity") is None
    assert stored["metadata"]["annotations"][lease_mod.RUN_ANNOTATION] == '{"ok":false,"error":{"reason":"Interrupted"}}'


def test_a_lease_call_the_apiserver_never_answers_gives_up_after_the_timeout() -> None:
    """An apiserver that accepts the connection and never answers (a call in flight when it went down):
    each Lease call fails after its timeout, so the renewer tries again and a run's end is not held."""
    import socket
    import time

    from kubernetes import client

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        config = client.Configuration()
        config.host = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config.retries = 0
        api = lease._Api(client.ApiClient(config), timeout=0.5)
        for call in (lambda: api.get("ns", "l"), lambda: api.create("ns", "l", {}),
                     lambda: api.replace("ns", {"metadata": {"name": "l"}}, {})):
            started = time.monotonic()
            with pytest.raises(Exception, match="(?i)timed? ?out"):
                call()
            assert time.monotonic() - started < 3


def test_a_renewal_after_the_release_does_not_take_the_lease_back():
    """The run's end does not wait for a renewal in flight: one that lands after the release finds the Lease
    free and leaves it so, or the next run would wait out a Lease held for a run that has ended."""
    api = FakeLeases()
    assert try_acquire(api, "ns", "l", "run-1", 15, now=lambda: T0) is None
    assert lease.release(api, "ns", "l", "run-1")
    late = try_acquire(api, "ns", "l", "run-1", 15, now=lambda: T0 + timedelta(seconds=1), renew_only=True)
    assert late is not None and late.holder is None
    assert api.get("ns", "l")["spec"].get("holderIdentity") is None
    assert try_acquire(api, "ns", "l", "run-2", 15, now=lambda: T0 + timedelta(seconds=1)) is None
