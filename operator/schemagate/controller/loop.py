"""Per-object work queue and the periodic resync: level-based, coalescing, never two runs of one object.

Watch events only say "look at this object again"; the reconcile reads the current state itself. The
resync lists every SchemaMigration on an interval, so nothing waits for an event that was coalesced away
(kopf may merge quick successive changes) or never came (ConfigMap and Secret edits are not watched).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[str, str]


class Controller:
    def __init__(self, work: Callable[[str, str], str | None], list_keys: Callable[[], list[Key]],
                 resync_seconds: float, workers: int = 4):
        self._work = work  # blocking; runs in a thread
        self._list_keys = list_keys
        self._resync = resync_seconds
        self._slots = asyncio.Semaphore(workers)
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._dirty: set[Key] = set()
        self._lease_of: dict[Key, str] = {}
        self._resync_task: asyncio.Task[None] | None = None

    def trigger(self, namespace: str, name: str) -> None:
        key = (namespace, name)
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

    async def _run(self, key: Key) -> None:
        try:
            while True:
                self._dirty.discard(key)
                async with self._slots:
                    try:
                        lease_name = await asyncio.to_thread(self._work, *key)
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
                keys = await asyncio.to_thread(self._list_keys)
                for key in keys:
                    self.trigger(*key)
            except Exception:
                log.exception("listing SchemaMigrations for the resync failed")
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
