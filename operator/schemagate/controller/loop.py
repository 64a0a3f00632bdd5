"""Per-object work queue and the periodic resync: level-based, coalescing, never two runs of one object.

Watch events only say "look at this object again"; the reconcile reads the current state itself. The
resync goes over every object on an interval, so nothing waits for an event that was coalesced away (kopf
may merge quick successive changes) or never came (ConfigMap and Secret edits are not watched). It goes
over them as the watch last delivered them (`Watched`), as client-go's informers resync from their cache: a
LIST per watched namespace per interval would cost the apiserver more the more namespaces are watched,
and tell nothing the watch did not. A run from an event is always a full reconcile; a run from the resync
gets the object as watched, so the work can tell that a settled one has nothing new (controller/resync.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[str, str]
Listed = Mapping[str, Any]  # an object as the watch last delivered it, for the resync
# (namespace, name, the listed object or None for an event) → the Lease it waits on, if any. Blocking.
Work = Callable[[str, str, "Listed | None"], "str | None"]


class Watched:
    """The objects of one resource as their watch last delivered them (kopf's initial listing, then every
    event): what the resync goes over. Kept by every replica, leader or not, so a new leader's first resync
    reaches everything at once."""

    def __init__(self) -> None:
        self._objects: dict[Key, Listed] = {}

    def saw(self, type: str | None, body: Listed) -> None:
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        if not namespace or not name:
            return
        if type == "DELETED":
            self._objects.pop((namespace, name), None)
        else:
            self._objects[(namespace, name)] = dict(body)

    def objects(self) -> list[Listed]:
        return list(self._objects.values())


class Controller:
    def __init__(self, work: Work, objects: Callable[[], Sequence[Listed]], resync_seconds: float,
                 workers: int = 4):
        self._work = work  # blocking; runs in a thread
        self._objects = objects  # what the resync goes over (Watched.objects): in memory, so on the event loop
        self._resync = resync_seconds
        self._slots = asyncio.Semaphore(workers)
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._dirty: set[Key] = set()
        self._full: set[Key] = set()  # an event came: the next run is a full reconcile
        self._listed: dict[Key, Listed] = {}  # the resync's view, for a run that no event asked for
        self._lease_of: dict[Key, str] = {}
        self._resync_task: asyncio.Task[None] | None = None

    def trigger(self, namespace: str, name: str, listed: Listed | None = None) -> None:
        key = (namespace, name)
        if listed is None:
            self._full.add(key)
        else:
            self._listed[key] = listed
        if key in self._running:
            self._dirty.add(key)  # coalesce: one more run after the current one
            return
        self._running[key] = asyncio.get_running_loop().create_task(self._run(key), name=f"reconcile {key}")

    def trigger_lease(self, namespace: str, lease_name: str) -> None:
        """The Lease changed (released, taken): look again at everyone waiting on it."""
        for key, name in list(self._lease_of.items()):
            if key[0] == namespace and name == lease_name:
                self.trigger(*key)

    def forget(self, namespace: str, name: str) -> None:
        self._lease_of.pop((namespace, name), None)
        self._listed.pop((namespace, name), None)

    async def _run(self, key: Key) -> None:
        try:
            while True:
                self._dirty.discard(key)
                listed = self._listed.pop(key, None)
                if key in self._full:
                    self._full.discard(key)
                    listed = None
                async with self._slots:
                    try:
                        lease_name = await asyncio.to_thread(self._work, *key, listed)
                        if lease_name:
                            self._lease_of[key] = lease_name
                    except Exception:
                        log.exception("reconciling %s/%s failed; the next event or resync retries", *key)
                if key not in self._dirty:
                    return
        finally:
            self._running.pop(key, None)

    async def resync_forever(self) -> None:
        while True:
            try:
                items = self._objects()
                for item in items:
                    self.trigger(item["metadata"]["namespace"], item["metadata"]["name"], item)
            except Exception:
                log.exception("the resync could not go over the objects")
            await asyncio.sleep(self._resync)

    def start(self) -> None:
        self._resync_task = asyncio.get_running_loop().create_task(self.resync_forever(), name="resync")

    async def stop(self) -> None:
        tasks: list[asyncio.Task[Any]] = list(self._running.values())
        if self._resync_task:
            tasks.append(self._resync_task)
            self._resync_task.cancel()
        for t in tasks:
            if t is not self._resync_task:
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class LeadingController(Controller):
    """Acts on triggers only once this replica leads (`acting`, set by the leader election). It exists from
    the start because kopf gives each object a copy of the memo as it was when the object was first seen."""

    acting = False

    def trigger(self, namespace: str, name: str, listed: Listed | None = None) -> None:
        if self.acting:
            super().trigger(namespace, name, listed)
