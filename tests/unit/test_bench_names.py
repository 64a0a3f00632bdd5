"""Scripts in bench/ run with bench/ first on sys.path: a file named like a standard-library module (say
`operator.py`) would be imported by the standard library itself, and every bench would fail to start."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_no_bench_module_shadows_the_standard_library() -> None:
    names = {p.stem for p in BENCH.glob("*.py")}
    assert names, BENCH
    assert not names & set(sys.stdlib_module_names), sorted(names & set(sys.stdlib_module_names))
