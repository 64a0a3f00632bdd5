"""pytest plugin: one cluster and one operator for every pytest-xdist worker (hack/test.sh runs the suite on
several), and the turns that keep a test that stops what all share from running beside the others.

The cluster's processes die with the thread that started them (devenv/processes.py), and the fault tests
stop and start them again, so one long-lived thread of the xdist controller owns them: the broker. A
worker asks it, over a Unix socket, for the cluster (started on first demand), for the operator (installed
once), for the next namespace of the operator's pool, to stop/start a component, or to import an image
into the node. The controller tears everything down when the session ends.

Turns: a test that uses the cluster holds a shared turn for its setup, call and teardown; a test marked
`exclusive` (it stops the apiserver or the node; it changes the machine's network) holds it alone. The
exclusive turn is asked for through a turnstile, so the shared turns asked for after it wait and it is not
starved. A test marked `serial(name)` shares the cluster but not `name` (fixed names of its own, say): the
tests marked with the same name take turns at it. A test that would stop what all share but can have one
of its own (an operator release: operator_fixtures.own_operator) has it, and is not `exclusive`.

Without xdist (`-n 0`, a plain `pytest`), none of this runs: kube_fixtures starts the cluster in-process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BROKER_KEY = "schemagate_broker"  # workerinput: the directory of the broker's socket and turn files
TIMELINE = "turns.jsonl"  # in that directory: one line per turn taken (SCHEMAGATE_TIMELINE=path keeps a copy)


def broker_dir(config: pytest.Config) -> Path | None:
    """On an xdist worker, the controller's broker directory; None when the session runs in one process."""
    workerinput = getattr(config, "workerinput", None)
    return Path(workerinput[BROKER_KEY]) if workerinput and BROKER_KEY in workerinput else None


class BrokerError(RuntimeError):
    """A request the broker cannot serve; its message goes back to the asking test."""


def ask(directory: Path, op: str, **args: Any) -> Any:
    """One request to the broker; what it could not do fails the asking test with the broker's reason. It
    answers one at a time, so a slow one (the cluster's start) queues the others behind it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(directory / "broker.sock"))
        sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        reply = json.loads(sock.makefile("rb").readline() or b'{"error": "the broker closed the connection"}')
    if "error" in reply:
        pytest.fail(reply["error"])
    return reply.get("result")


class RemoteCluster:
    """What a worker's tests use of devenv.cluster.LocalCluster, done by the broker that owns it."""

    def __init__(self, directory: Path, state: dict[str, Any]):
        self._broker = directory
        self.directory = Path(state["directory"])

    def stop_component(self, name: str) -> None:
        ask(self._broker, "stop_component", name=name)

    def start_component(self, name: str, timeout: float = 120.0) -> None:
        ask(self._broker, "start_component", name=name, timeout=timeout)

    def restart(self, *names: str, down: float = 0.0, timeout: float = 120.0) -> None:
        ask(self._broker, "restart", names=list(names), down=down, timeout=timeout)

    def import_image(self, image: Any) -> str:
        return str(ask(self._broker, "import_image", ref=image.ref, archive=str(image.archive)))


class _Broker:
    """The controller's side: the session cluster (kube_fixtures.session_cluster), the operator, the pool."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="schemagate-xdist-"))
        self.kube: Any = None
        self.operator: Any = None
        self.operator_failed: str | None = None
        broker = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request = json.loads(self.rfile.readline())
                try:
                    reply = {"result": broker.serve(**request)}
                except BaseException as exc:  # pytest.fail is a BaseException: its message is the answer
                    reply = {"error": f"{type(exc).__name__}: {exc}"}
                self.wfile.write(json.dumps(reply).encode() + b"\n")

        self.server = socketserver.UnixStreamServer(str(self.directory / "broker.sock"), Handler)
        # One thread serves every request, one after the other: what it spawns (the cluster's processes)
        # lives as long as it does.
        self.thread = threading.Thread(target=self.server.serve_forever, name="schemagate-broker", daemon=True)
        self.thread.start()

    def serve(self, op: str, **args: Any) -> Any:
        if op == "cluster":
            kube = self._kube()
            return {"kubeconfig": str(kube.kubeconfig), "kubectl": kube.kubectl_bin, "helm": kube.helm_bin,
                    "directory": str(kube.cluster.directory)}
        if op == "operator":
            self._operator()
            return None
        if op == "namespace":
            return self._operator().next_free()
        cluster = self._kube().cluster
        if op == "stop_component":
            return cluster.stop_component(args["name"])
        if op == "start_component":
            return cluster.start_component(args["name"], args["timeout"])
        if op == "restart":
            return cluster.restart(*args["names"], down=args["down"], timeout=args["timeout"])
        if op == "import_image":
            from devenv.images import Image

            return cluster.import_image(Image(args["ref"], Path(args["archive"])))
        raise BrokerError(f"no broker operation {op!r}")

    def _kube(self) -> Any:
        if self.kube is None:
            from kube_fixtures import local_kube

            self.kube = local_kube()
        return self.kube

    def _operator(self) -> Any:
        if self.operator_failed:
            raise BrokerError(self.operator_failed)
        if self.operator is None:
            from operator_fixtures import Operator, install_crds

            kube = self._kube()
            try:
                install_crds(kube)
                operator = Operator(kube)
                operator.install()
            except BaseException as exc:
                self.operator_failed = f"the operator did not install: {exc}"
                raise
            self.operator = operator
        return self.operator

    def close(self) -> None:
        """The operator uninstalled and the cluster stopped, from the main thread while the broker's thread
        (the processes' parent) still lives; then the broker itself."""
        from kube_fixtures import session_cluster

        try:
            if self.operator is not None:
                self.operator.stop()
        finally:
            try:
                session_cluster.stop()
            finally:
                self.server.shutdown()
                self.server.server_close()
                shutil.rmtree(self.directory, ignore_errors=True)


_broker: _Broker | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """On the xdist controller, before its workers start (xdist starts them in a trylast sessionstart)."""
    global _broker
    if session.config.pluginmanager.has_plugin("dsession") and _broker is None:
        import kube_fixtures

        kube_fixtures.terminate_as_interrupt()
        _broker = _Broker()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    if _broker is not None:
        node.workerinput[BROKER_KEY] = str(_broker.directory)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _broker
    if _broker is not None:
        broker, _broker = _broker, None
        broker.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the workers, the tests that start a cluster of their own are left for a run without xdist
    (hack/test.sh's second pytest, SCHEMAGATE_PHASE=owns_machine, which runs only them): while the workers
    share the session's cluster, none can stop it."""
    if broker_dir(config) is not None:
        keep = lambda item: not item.get_closest_marker("owns_machine")  # noqa: E731
    elif os.environ.get("SCHEMAGATE_PHASE") == "owns_machine":
        keep = lambda item: item.get_closest_marker("owns_machine") is not None  # noqa: E731
    else:
        return
    dropped = [item for item in items if not keep(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if keep(item)]


def takes_turn(item: pytest.Item) -> bool:
    """Whether a test uses what the cluster tests share: the cluster itself, or the machine's state that
    one of them checks (a `serial` name)."""
    return any(item.get_closest_marker(m) is not None for m in ("exclusive", "serial")) \
        or "kube" in getattr(item, "fixturenames", ())


@contextlib.contextmanager
def turn(directory: Path, exclusive: bool, serial: str | None = None) -> Iterator[None]:
    """flock(2) turns over two files: the turnstile, held by an exclusive turn from its request to its end;
    the room, shared by the others, taken alone by an exclusive turn. A `serial` name is a third file,
    taken alone before the others (so a test waiting for it holds no share of the room meanwhile)."""
    with contextlib.ExitStack() as stack:
        if serial is not None:
            name = stack.enter_context(open(directory / f"serial-{serial}", "a+"))
            fcntl.flock(name, fcntl.LOCK_EX)
        with _room(directory, exclusive):
            yield


@contextlib.contextmanager
def _room(directory: Path, exclusive: bool) -> Iterator[None]:
    with open(directory / "turnstile", "a+") as turnstile, open(directory / "room", "a+") as room:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if exclusive:
            fcntl.flock(room, fcntl.LOCK_EX)
        else:
            fcntl.flock(room, fcntl.LOCK_SH)
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)
            fcntl.flock(turnstile, fcntl.LOCK_UN)


_kept: contextlib.ExitStack | None = None  # an exclusive turn kept for this worker's next test


# tryfirst: the outermost wrapper, so the wait for a turn is not counted in pytest-timeout's 600 s.
@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """The turn spans the test's setup, call and teardown, and so also the module- and session-scoped
    fixtures set up or torn down with it (a module's podman, say). The exclusive tests are collected first
    (kube_fixtures), so they fall to one worker in a row and run as one block at the start."""
    directory = broker_dir(item.config)
    exclusive = item.get_closest_marker("exclusive") is not None
    serial = item.get_closest_marker("serial")
    if directory is None or not takes_turn(item):
        yield
        return
    global _kept
    asked = time.time()
    held, _kept = _kept, None
    if held is None:
        held = contextlib.ExitStack()
        held.enter_context(turn(directory, exclusive, serial.args[0] if serial else None))
    got = time.time()
    try:
        yield
    finally:
        # An exclusive turn goes on to this worker's next test when that one is exclusive too: the room is
        # not drained of shared tests again between the two (the fault tests come one after the other).
        if exclusive and nextitem is not None and nextitem.get_closest_marker("exclusive") is not None:
            _kept = held
        else:
            held.close()
    _timeline(directory, {"test": item.nodeid, "worker": os.environ.get("PYTEST_XDIST_WORKER", ""),
                          "exclusive": exclusive, "asked": asked, "got": got, "done": time.time()})


def _timeline(directory: Path, row: dict[str, Any]) -> None:
    """One line per turn, appended by the workers (O_APPEND: a short line is written whole)."""
    with open(directory / TIMELINE, "a") as f:
        f.write(json.dumps(row) + "\n")


def turn_summary(rows: list[dict[str, Any]]) -> list[str]:
    """Where the workers' time went: tests held alone (which nothing else can overlap), the waits for a
    turn, and the longest of each. The basis for ordering and for what to make shorter."""
    if not rows:
        return []
    alone = [r for r in rows if r["exclusive"]]
    shared = [r for r in rows if not r["exclusive"]]
    held = lambda r: r["done"] - r["got"]  # noqa: E731
    waited = lambda r: r["got"] - r["asked"]  # noqa: E731
    span = max(r["done"] for r in rows) - min(r["asked"] for r in rows)
    lines = [f"turns: {len(rows)} over {span:.0f} s; {len(alone)} held alone for {sum(map(held, alone)):.0f} s; "
             f"waiting for a turn {sum(map(waited, rows)):.0f} s in all (shared {sum(map(waited, shared)):.0f} s, "
             f"alone {sum(map(waited, alone)):.0f} s)"]
    for r in sorted(alone, key=held, reverse=True)[:10]:
        lines.append(f"  alone {held(r):6.1f} s (waited {waited(r):5.1f} s)  {r['test']}")
    for r in sorted(shared, key=waited, reverse=True)[:5]:
        lines.append(f"  waited {waited(r):5.1f} s for a shared turn  {r['test']}")
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _broker is None:
        return
    path = _broker.directory / TIMELINE
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    if os.environ.get("SCHEMAGATE_TIMELINE") and path.exists():
        shutil.copy(path, os.environ["SCHEMAGATE_TIMELINE"])
    lines = turn_summary(rows)
    if lines:
        terminalreporter.section("turns on the shared cluster")
        for line in lines:
            terminalreporter.write_line(line)


__all__ = ["RemoteCluster", "ask", "broker_dir", "takes_turn", "turn"]
