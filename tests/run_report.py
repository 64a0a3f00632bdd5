"""pytest plugin: what the cluster tests measure (failover time, gate latency) and the fault suite's runs,
printed at the end of the session, where captured output is not. Figures for the issues' notes and the
docs, never asserted against a time.

Under pytest-xdist each worker keeps its own lists; they travel to the controller in `workeroutput`
when the worker finishes, and the controller prints them.
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest

MEASURED: list[str] = []
# One row per fault run: {"fault", "recovered" ("itself" | "action" | None), "seconds", "lost", "double"}.
RUNS: list[dict[str, Any]] = []


def measured(line: str) -> None:
    MEASURED.append(line)
    print(line)


def pytest_sessionfinish(session: Any) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["schemagate_measured"] = list(MEASURED)
        output["schemagate_fault_runs"] = list(RUNS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    output = getattr(node, "workeroutput", None) or {}
    MEASURED.extend(output.get("schemagate_measured", []))
    RUNS.extend(output.get("schemagate_fault_runs", []))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    tr = terminalreporter
    if MEASURED:
        tr.section("measured on the node")
        for line in MEASURED:
            tr.write_line(line)
    if RUNS:
        tr.section("fault suite summary")
        for line in fault_table(RUNS):
            tr.write_line(line)


def fault_table(runs: list[dict[str, Any]]) -> list[str]:
    by_fault: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_fault.setdefault(run["fault"], []).append(run)
    lines = [f"{'fault':<28} runs  by-itself  after-action  lost  double  median-converge-s"]
    for fault, group in [*by_fault.items(), ("all", runs)]:
        times = [r["seconds"] for r in group if r["seconds"] is not None]
        lines.append(f"{fault:<28} {len(group):>4}  {sum(r['recovered'] == 'itself' for r in group):>9}  "
                     f"{sum(r['recovered'] == 'action' for r in group):>12}  {sum(r['lost'] for r in group):>4}  "
                     f"{sum(r['double'] for r in group):>6}  {statistics.median(times) if times else '-':>17}")
    return lines
