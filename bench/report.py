"""Medians, ratios and the printed table of a benchmark run. Pure functions over the raw timings."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Timing:
    tool: str
    size: int
    latency: str  # "0ms", "1ms" (each way, through toxiproxy) or "direct" (no proxy)
    op: str  # "up", "status" or "start" (the process alone: --help / --version)
    repetition: int
    seconds: float


Key = tuple[str, int, str, str]  # (tool, size, latency, op)
OPS = ("up", "status", "start")


def medians(timings: list[Timing]) -> dict[Key, float]:
    grouped: dict[Key, list[float]] = {}
    for t in timings:
        grouped.setdefault((t.tool, t.size, t.latency, t.op), []).append(t.seconds)
    return {k: statistics.median(v) for k, v in grouped.items()}


def ratios(med: dict[Key, float], tool: str, baselines: list[str]) -> dict[Key, float]:
    """(baseline, size, latency, op) -> median(tool) / median(baseline), where both were measured."""
    out: dict[Key, float] = {}
    for (t, size, latency, op), base in med.items():
        # Start-up alone is shown, not divided: it is the fixed part of every other figure.
        if t in baselines and op != "start" and (tool, size, latency, op) in med and base > 0:
            out[(t, size, latency, op)] = med[(tool, size, latency, op)] / base
    return out


def render_table(med: dict[Key, float], tools: list[str], sizes: list[int], latencies: list[str], subject: str,
                 baselines: list[str]) -> str:
    rat = ratios(med, subject, baselines)
    ratio_cols = [f"{subject}/{b}" for b in baselines]
    header = ["N", "latency", "op", *tools, *ratio_cols]
    rows = [header]
    for size in sizes:
        for latency in latencies:
            for op in OPS:
                row = [str(size), latency, op]
                row += [f"{med[(t, size, latency, op)]:.3f}s" if (t, size, latency, op) in med else "n/a"
                        for t in tools]
                row += [f"{rat[(b, size, latency, op)]:.2f}x" if (b, size, latency, op) in rat else "n/a"
                        for b in baselines]
                rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def spread(timings: list[Timing]) -> dict[Key, tuple[float, float]]:
    """(min, max) per key: on a shared machine the spread says how far to trust a median."""
    out: dict[Key, tuple[float, float]] = {}
    for t in timings:
        k = (t.tool, t.size, t.latency, t.op)
        lo, hi = out.get(k, (t.seconds, t.seconds))
        out[k] = (min(lo, t.seconds), max(hi, t.seconds))
    return out


def to_json(timings: list[Timing], med: dict[Key, float], subject: str, baselines: list[str]) -> dict:
    ranges = spread(timings)
    return {
        "timings": [asdict(t) for t in timings],
        "medians": [{"tool": t, "size": s, "latency": lat, "op": o, "seconds": v,
                     "min": ranges[(t, s, lat, o)][0], "max": ranges[(t, s, lat, o)][1]}
                    for (t, s, lat, o), v in sorted(med.items())],
        "ratios": [{"numerator": subject, "denominator": b, "size": s, "latency": lat, "op": o, "ratio": v}
                   for (b, s, lat, o), v in sorted(ratios(med, subject, baselines).items())],
    }
