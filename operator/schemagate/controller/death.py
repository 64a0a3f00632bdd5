"""What a runner that died without writing its result was doing (pure).

The runner writes its progress at every step (migrate/progress.py): to the termination message, which the
kubelet keeps whatever way the container ended, and onto the Lease, which outlives a deleted pod. A progress
document — never a final result — plus how the container ended (exit code, signal) is all there is to go on.
"""

from __future__ import annotations

import signal as signals
from typing import Any

from schemagate.api import reasons


def how_it_ended(exit_code: int | None, signal: int | None, reason: str | None) -> str:
    """"exit code 137 (SIGKILL)", "OOMKilled, exit code 137 (SIGKILL)", "the pod was deleted" ..."""
    if exit_code is None and signal is None:
        return reason or "the pod is gone (deleted, or its node lost)"
    number = signal if signal else (exit_code - 128 if exit_code and exit_code > 128 else None)
    name = ""
    if number:
        try:
            name = f" ({signals.Signals(number).name})"
        except ValueError:
            name = f" (signal {number})"
    said = f"exit code {exit_code}{name}" if exit_code is not None else f"signal {number}{name}"
    return f"{reason}, {said}" if reason and reason not in ("Error", "Completed") else said


def result_of(progress: dict[str, Any], ended: str) -> dict[str, Any]:
    """The runner's progress turned into a failed result naming the file that was running."""
    applied = progress.get("applied") or []
    done = len(applied) + int(progress.get("appliedOmitted") or 0)
    running = progress.get("running") or {}
    file, version = running.get("file"), running.get("version")
    if not file:
        after = f"after {done} step(s) had completed (the last: {applied[-1]['file']})" if applied else \
            "before any migration started"
        error: dict[str, Any] = {
            "reason": reasons.RUNNER_KILLED, "message": f"the runner died ({ended}) {after}; no migration was "
                                                  f"running. Retry with the schemagate.io/retry annotation"}
    elif running.get("noTransaction"):
        error = {"reason": reasons.NO_TRANSACTION_INTERRUPTED, "file": file, "version": version,
                 "message": f"the runner died ({ended}) while running NO TRANSACTION file {file} "
                            f"({running.get('direction', 'up')}), after {done} step(s) had completed: the statements "
                            f"of it that had finished stay applied and its version row was not written, so what "
                            f"it applied cannot be known from here. Check the objects {file} creates or changes, "
                            f"finish or undo them by hand, then `schemagate migrate resolve-interrupted {version}` "
                            f"and retry (schemagate.io/retry); until then every run refuses"}
    else:
        error = {"reason": reasons.RUNNER_KILLED, "file": file, "version": version,
                 "message": f"the runner died ({ended}) while running {file} ({running.get('direction', 'up')}), "
                            f"after {done} step(s) had completed; PostgreSQL rolled back {file}'s transaction when "
                            f"the connection closed, so it is not applied. Retry with the schemagate.io/retry "
                            f"annotation (and look for why: OOMKilled, a deleted pod, a lost node)"}
    out = {k: v for k, v in progress.items() if k not in ("progress", "running")}
    out.update(ok=False, error={"line": None, "statement": None, "sqlstate": None, "file": None, "version": None,
                                **error})
    return out


def with_outcome(result: dict[str, Any], outcome: str | None) -> dict[str, Any]:
    """A final result, with what the Job controller said when it is not the runner's own words (DeadlineExceeded)."""
    error = result.get("error")
    if not outcome or not isinstance(error, dict) or outcome in str(error.get("message") or ""):
        return result
    return {**result, "error": {**error, "message": f"{outcome}: {error.get('message')}"}}
