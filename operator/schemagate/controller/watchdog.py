"""A list-and-watch stream kopf has given up is a namespace the operator no longer sees: liveness fails.

kopf runs one task per watched resource and namespace, named "watcher for RESOURCE@NAMESPACE". One that
ends (kopf treats a watch-stream ERROR event other than 410, or a request that escalated, as fatal to that
task alone) is not started again while the process lives, and the operator stays blind to that resource
in that namespace, saying nothing after one log line. The probe reports it; the kubelet restarts the
container (the chart's livenessProbe), and the new process lists everything anew.

A finished task leaves asyncio.all_tasks(), so the watchers are remembered while they run (sampled every
SAMPLE_SECONDS); one that ends within that long of its start is not seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

WATCHER_PREFIX = "watcher for "  # kopf._core.reactor.orchestration names its watcher tasks so
SAMPLE_SECONDS = 1.0


class Watchers:
    """kopf's watcher tasks as seen running, and which of them have ended since."""

    def __init__(self) -> None:
        self._seen: set[asyncio.Task[object]] = set()

    def sample(self, tasks: Iterable[asyncio.Task[object]]) -> None:
        self._seen |= {t for t in tasks if t.get_name().startswith(WATCHER_PREFIX) and not t.done()}

    def dead(self) -> list[str]:
        """RESOURCE@NAMESPACE of each watcher that failed or finished (cancelled is kopf stopping it on
        purpose: the operator stopping, a namespace no longer watched)."""
        return sorted(t.get_name()[len(WATCHER_PREFIX):] for t in self._seen if t.done() and not t.cancelled())

    def alive(self) -> int:
        return sum(1 for t in self._seen if not t.done())

    async def sample_forever(self) -> None:
        while True:
            self.sample(asyncio.all_tasks())
            await asyncio.sleep(SAMPLE_SECONDS)
