"""The runner's progress, written where the operator can read it if the process dies without a word.

SIGKILL, the OOM killer or a node going away end the runner before it can write its result. So the result
document is written at every step — to the result file (the Job's termination message: the kubelet reads the
file when the container ends, however it ends) and onto the Lease (which outlives the pod) — marked
`"progress": true` with the step that is `running`. The last write, the result itself, has neither.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from schemagate.migrate import result
from schemagate.migrate.runner import RunResult


def document(res: RunResult, *, final: bool) -> dict[str, Any]:
    doc = result.to_json(res)
    if not final:
        doc["progress"] = True
        step = res.in_progress
        if step is not None:
            doc["running"] = {"version": step.version, "file": step.file, "direction": step.direction,
                              "noTransaction": step.no_transaction}
    return doc


class Progress:
    def __init__(self, result_file: str | None, holder: str | None = None):
        self.result_file = result_file
        self.holder = holder
        self.lease_note: Callable[[str], None] | None = None

    def __call__(self, res: RunResult, *, final: bool = False) -> None:
        doc = result.shrink(document(res, final=final))
        if self.result_file:
            with contextlib.suppress(OSError):  # the final write reports its own failure
                Path(self.result_file).write_text(result.compact(doc), encoding="utf-8")
        if self.lease_note is not None:
            self.lease_note(result.compact({**doc, "holder": self.holder}))
