"""The periodic resync: what it goes over (the objects as watched, never a LIST), and which SchemaMigrations
it reconciles, so that an idle operator's cost follows change rather than the number of objects or of
namespaces (controller/loop.py, resync.py)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from types import SimpleNamespace
from typing import Any

from kubernetes.client.rest import ApiException

from schemagate.controller import resync
from schemagate.controller.loop import Controller, Watched
from schemagate.controller.resync import ConfigMapVersion, Resyncs


def sm(namespace: str, name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "resourceVersion": version}}


def test_the_resync_goes_over_each_object_as_its_watch_last_delivered_it_without_asking_the_apiserver() -> None:
    """Through the SchemaMigration event handler as kopf calls it: the initial listing (type None), changes,
    a deletion; the resync then triggers every object still there with its latest body, and nothing else."""
    from schemagate.controller import handlers

    triggered: list[tuple[str, str, Any]] = []

    class Recording(Controller):
        def trigger(self, namespace: str, name: str, listed: Any = None) -> None:
            triggered.append((namespace, name, listed))

    watched = Watched()
    controller = Recording(lambda *_: None, watched.objects, resync_seconds=3600)
    memo = {"watched": watched, "controller": controller}

    async def scenario() -> None:
        for type_, body in [(None, sm("a", "app", "1")), (None, sm("b", "app", "2")), ("MODIFIED", sm("a", "app", "3")),
                            ("ADDED", sm("a", "other", "4")), ("DELETED", sm("b", "app", "2"))]:
            await handlers.schemamigration_event(type=type_, body=body, namespace=body["metadata"]["namespace"],
                                                 name=body["metadata"]["name"], memo=memo)
        triggered.clear()  # what the events triggered; the resync's turn now
        task = asyncio.get_running_loop().create_task(controller.resync_forever())
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(scenario())
    assert sorted((ns, name, listed["metadata"]["resourceVersion"]) for ns, name, listed in triggered) == [
        ("a", "app", "3"), ("a", "other", "4")]


def test_the_sets_resync_goes_over_the_sets_as_watched() -> None:
    from schemagate.controller import fleet_handlers

    memo: dict[str, Any] = {}
    fleet_handlers.make_controller(memo, SimpleNamespace(), SimpleNamespace(options=None, resync_seconds=30))  # type: ignore[arg-type]

    async def scenario() -> None:
        for type_, body in [(None, sm("a", "fleet", "1")), ("DELETED", sm("a", "fleet", "1")), ("ADDED", sm("b", "f", "5"))]:
            await fleet_handlers.schemamigrationset_event(type=type_, body=body, namespace=body["metadata"]["namespace"],
                                                          name=body["metadata"]["name"], memo=memo)

    asyncio.run(scenario())
    assert [o["metadata"]["name"] for o in memo[fleet_handlers.WATCHED_KEY].objects()] == ["f"]


def at_rest(**status: Any) -> dict[str, Any]:
    base = {"observedGeneration": 3, "currentVersion": 2, "targetVersion": 2,
            "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 3}]}
    return {"metadata": {"namespace": "ns", "name": "app", "generation": 3, "resourceVersion": "100"},
            "spec": {"source": {"configMaps": ["m1", "m2"]}}, "status": {**base, **status}}


def test_only_ready_at_the_target_for_this_generation_with_nothing_running_or_held_is_settled() -> None:
    assert resync.settled(at_rest())
    assert not resync.settled(at_rest(observedGeneration=2))  # a new spec not yet reconciled
    assert not resync.settled(at_rest(conditions=[{"type": "Ready", "status": "False", "observedGeneration": 3}]))
    assert not resync.settled(at_rest(currentJob={"job": "app-g3-x", "outcome": "Running"}))
    assert not resync.settled(at_rest(rolloutGate={"waiting": 1}))
    assert not resync.settled(at_rest(currentVersion=1))
    deleting = at_rest()
    deleting["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    assert not resync.settled(deleting)
    assert not resync.settled({"metadata": {"generation": 1}})  # never reconciled


class Reads:
    """ConfigMap versions as the apiserver would give them; counts the reads, whole or metadata only."""

    def __init__(self, **immutable: bool):
        self.immutable = immutable
        self.version = {"m1": "1", "m2": "1"}
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, namespace: str, name: str, metadata_only: bool) -> ConfigMapVersion:
        self.calls.append((name, metadata_only))
        return ConfigMapVersion(name, f"uid-{name}", self.version[name],
                                self.immutable.get(name, False) and not metadata_only)


def test_a_settled_object_is_reconciled_once_then_skipped_until_something_changes() -> None:
    now = [1000.0]
    store, reads, item = Resyncs(600, lambda: now[0]), Reads(m1=True), at_rest()
    key = ("ns", "app")
    first = store.fingerprint(key, item, reads)
    assert reads.calls == [("m1", False), ("m2", False)]  # first sight: whole, to learn `immutable`
    assert not store.unchanged(key, item, first)  # never reconciled: reconcile
    store.record(key, first, now[0])

    reads.calls.clear()
    again = store.fingerprint(key, item, reads)
    assert reads.calls == [("m2", True)]  # the immutable one is not read again; the other as metadata
    assert store.unchanged(key, item, again)

    reads.version["m2"] = "2"  # an in-place edit of the mutable ConfigMap
    assert not store.unchanged(key, item, store.fingerprint(key, item, reads))

    reads.version["m2"] = "1"
    edited = copy.deepcopy(item)
    edited["metadata"]["resourceVersion"] = "101"  # the object changed (a status write, an annotation)
    assert not store.unchanged(key, edited, store.fingerprint(key, edited, reads))

    busy = at_rest(currentJob={"job": "j"})
    assert not store.unchanged(key, busy, store.fingerprint(key, busy, reads))

    now[0] += 600  # the safety net: Secret and database read again
    assert not store.unchanged(key, item, store.fingerprint(key, item, reads))


def test_a_forgotten_object_is_reconciled_again() -> None:
    store, reads, item = Resyncs(600, lambda: 0.0), Reads(), at_rest()
    key = ("ns", "app")
    store.record(key, store.fingerprint(key, item, reads), 0.0)
    store.forget(key)
    assert not store.unchanged(key, item, store.fingerprint(key, item, reads))


def test_read_config_map_version_whole_or_as_metadata_and_missing_as_a_version() -> None:


    seen: list[dict[str, str]] = []

    class Core:
        def read_namespaced_config_map(self, name: str, namespace: str, _preload_content: bool,
                                       _headers: dict[str, str]) -> Any:
            seen.append(_headers)
            if name == "gone":
                raise ApiException(status=404)
            return SimpleNamespace(data=json.dumps({"metadata": {"uid": "u", "resourceVersion": "7"},
                                                    "immutable": True}).encode())

    assert resync.read_config_map_version(Core(), "ns", "m", metadata_only=False) == ConfigMapVersion("m", "u", "7", True)
    assert resync.read_config_map_version(Core(), "ns", "gone", metadata_only=True) == ConfigMapVersion("gone", None, None)
    assert seen[0] == {} and "PartialObjectMetadata" in seen[1]["Accept"]


def test_an_event_always_reconciles_in_full_even_when_a_resync_was_queued() -> None:


    runs: list[tuple[str, Any]] = []

    def work(namespace: str, name: str, listed: Any) -> None:
        runs.append((name, listed))
        if len(runs) == 3:
            time.sleep(0.2)  # holds c's first run while two more triggers for it come

    async def scenario() -> None:
        c = Controller(work, list, resync_seconds=3600)
        c.trigger("ns", "a", {"v": 1})  # from the resync: the work gets the listed object
        c.trigger("ns", "b")  # from an event: None, a full reconcile
        await asyncio.sleep(0.05)
        c.trigger("ns", "c", {"v": 1})
        await asyncio.sleep(0.05)
        c.trigger("ns", "c", {"v": 2})  # coalesced with the event below, which wins
        c.trigger("ns", "c")
        await asyncio.sleep(0.4)

    asyncio.run(scenario())
    assert runs == [("a", {"v": 1}), ("b", None), ("c", {"v": 1}), ("c", None)]
