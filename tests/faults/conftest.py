"""The fault suite runs on the e2e fixtures (tests/operator_fixtures.py: the operator as its chart's pod, a
pool of namespaces), and collects one row per run for the summary printed at the end."""

from __future__ import annotations

import statistics
from typing import Any

from fault_log import RUNS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RUNS:
        return
    tr = terminalreporter
    tr.section("fault suite summary")
    by_fault: dict[str, list[dict[str, Any]]] = {}
    for run in RUNS:
        by_fault.setdefault(run["fault"], []).append(run)
    tr.write_line(f"{'fault':<28} runs  by-itself  after-action  lost  double  median-converge-s")
    for fault, runs in by_fault.items():
        times = [r["seconds"] for r in runs if r["seconds"] is not None]
        tr.write_line(f"{fault:<28} {len(runs):>4}  {sum(r['recovered'] == 'itself' for r in runs):>9}  "
                      f"{sum(r['recovered'] == 'action' for r in runs):>12}  {sum(r['lost'] for r in runs):>4}  "
                      f"{sum(r['double'] for r in runs):>6}  {statistics.median(times) if times else '-':>17}")
    times = [r["seconds"] for r in RUNS if r["seconds"] is not None]
    tr.write_line(f"{'all':<28} {len(RUNS):>4}  {sum(r['recovered'] == 'itself' for r in RUNS):>9}  "
                  f"{sum(r['recovered'] == 'action' for r in RUNS):>12}  {sum(r['lost'] for r in RUNS):>4}  "
                  f"{sum(r['double'] for r in RUNS):>6}  {statistics.median(times) if times else '-':>17}")
