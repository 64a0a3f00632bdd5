"""The turns of tests/shared_cluster.py, across processes as xdist's workers take them: an exclusive turn
runs alone, shared turns overlap, and an exclusive turn asked for while shared ones run is not starved by
shared turns asked for after it; serial turns of one name take turns, beside the shared ones."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from shared_cluster import turn


def _hold(directory: str, exclusive: bool | str, seconds: float, log: str, name: str, start_after: float) -> None:
    """`exclusive`: True, False, or the name of a serial turn (shared, one at a time per name)."""
    time.sleep(start_after)
    serial = exclusive if isinstance(exclusive, str) else None
    with turn(Path(directory), exclusive is True, serial):
        with open(log, "a") as f:
            f.write(f"{time.monotonic():.4f} start {name}\n")
        time.sleep(seconds)
        with open(log, "a") as f:
            f.write(f"{time.monotonic():.4f} end {name}\n")


def _run(tmp_path: Path, *holders: tuple[str, bool | str, float, float]) -> list[tuple[str, str]]:
    log = tmp_path / "log"
    log.touch()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hold, args=(str(tmp_path), exclusive, seconds, str(log), name, after))
             for name, exclusive, seconds, after in holders]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    lines = sorted(line.split() for line in log.read_text().splitlines())
    return [(event, name) for _, event, name in lines]


def test_shared_turns_overlap(tmp_path: Path) -> None:
    events = _run(tmp_path, ("a", False, 0.6, 0), ("b", False, 0.6, 0.1))
    assert events == [("start", "a"), ("start", "b"), ("end", "a"), ("end", "b")]


def test_an_exclusive_turn_waits_for_the_shared_ones_and_runs_alone(tmp_path: Path) -> None:
    events = _run(tmp_path, ("a", False, 0.6, 0), ("x", True, 0.3, 0.1), ("b", False, 0.3, 0.3))
    # b asked after x: it waits behind x although a, a shared turn, still ran when it asked.
    assert events == [("start", "a"), ("end", "a"), ("start", "x"), ("end", "x"), ("start", "b"), ("end", "b")]


def test_serial_turns_of_one_name_take_turns_and_overlap_the_shared_ones(tmp_path: Path) -> None:
    events = _run(tmp_path, ("s1", "bench", 0.6, 0), ("s2", "bench", 0.3, 0.1), ("a", False, 0.3, 0.2),
                  ("t", "other", 0.3, 0.2))
    # a and t (another name) start while s1 runs; s2, of s1's name, only once s1 has ended.
    assert events.index(("start", "a")) < events.index(("end", "s1"))
    assert events.index(("start", "t")) < events.index(("end", "s1"))
    assert events.index(("start", "s2")) > events.index(("end", "s1"))


class _Item:
    def __init__(self, name: str, markers: tuple[str, ...] = (), fixtures: tuple[str, ...] = ()):
        self.name, self.markers, self.fixturenames = name, markers, fixtures

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def test_collection_order_exclusive_then_shared_then_no_cluster_then_own_clusters() -> None:
    """The workers that do not get the exclusive block run the tests that need no cluster meanwhile, so
    those come after the shared ones in the collection (worksteal deals out runs of it); a serial test with
    no cluster fixture (compose) still takes a turn."""
    from kube_fixtures import pytest_collection_modifyitems

    items = [_Item("unit"), _Item("owns", ("owns_machine",)), _Item("shared", (), ("kube",)),
             _Item("compose", ("serial",)), _Item("fault", ("exclusive",), ("kube",)), _Item("db", (), ("pg",))]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [i.name for i in items] == ["fault", "shared", "compose", "unit", "db", "owns"]
