"""Jittered retry delays for kopf's API requests.

kopf retries a failed request (429 Too Many Requests, 5xx, a refused connection) after the delays of
`settings.networking.error_backoffs`, the same for every request: 1, 1, 2, 3, 5, 8, 13, 21 s. An operator
watching N namespaces starts 5 x N list-and-watch streams at once, on every replica; when the apiserver's
priority and fairness refuses part of them with 429, they all come back together after exactly 1 s, then
2 s, ... and can be refused together again (seen on the node: 88 namespaces, two replicas, 60 429s on
the first attempts at a start). client-go spreads its retries with jitter (wait.Jitter: each delay
stretched by up to a factor); so do we, over kopf's own delays, never shortening one.

And we never run out of delays: after kopf's last one a request escalates, and a list-and-watch stream
that escalates with anything but a 429 ends its watcher for good, so the operator stays blind to that
resource in that namespace until it restarts (an apiserver away for more than kopf's 54 s of delays).
client-go's reflector retries forever; after the last delay, so do we, at that delay.

We stop growing at kopf's 8 s, not its 13 and 21 s. A request's delays are one sequence over all its
failures, so after an apiserver outage of 30-40 s (a restart, an upgrade of a single control plane) each
stream is 5-7 failures in: with 21 s it tried again up to 31 s after the apiserver was back, and a 429
from priority and fairness then (every stream relisting at once) cost another 21-31 s. Measured on the
node, 96 namespaces: a SchemaMigration created after the restart got its Job 45-65 s later. At 8 s
(jittered to at most 12) a stream is back within about 12 s of the apiserver, and one refused with 429
within 24; a stream retrying a down apiserver costs a refused connection every 8-12 s.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence

# kopf's own delays (its default error_backoffs) up to 8 s; after them the last one repeats, forever.
KOPF: tuple[float, ...] = (1, 1, 2, 3, 5, 8, 13, 21)
BASE: tuple[float, ...] = KOPF[:6]
JITTER = 0.5  # each delay is drawn from [d, d * (1 + JITTER)]


class Jittered:
    """An endless iterable of delays that kopf iterates once per failing request, fresh jitter each time.

    Not a Sequence on purpose: kopf consumes `error_backoffs` anew for every request, and an iterable
    without a length is what it retries without a count."""

    def __init__(self, base: Sequence[float] = BASE, jitter: float = JITTER,
                 uniform: Callable[[float, float], float] = random.uniform):
        if not base:
            raise ValueError("at least one delay is needed")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], not {jitter}")
        self.base, self.jitter, self._uniform = tuple(base), jitter, uniform

    def __iter__(self) -> Iterator[float]:
        for d in itertools.chain(self.base, itertools.repeat(self.base[-1])):
            yield self._uniform(d, d * (1 + self.jitter))
