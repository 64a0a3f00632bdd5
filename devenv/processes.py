"""Child processes that never outlive us: own process group, killed with their parent.

Each child leads its own process group so that stopping it also stops whatever it forked (a `sh -c`
container command, say). PR_SET_PDEATHSIG makes the kernel kill it if we die without cleaning up
(SIGKILL, OOM): the signal fires when the *thread* that forked exits, so callers spawn from a thread
that outlives the child (the main thread, or the thread that waits for it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Mapping, Sequence

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv: Sequence[str], *, log: Path | IO[bytes], env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start argv in a new session, stdout+stderr appended to `log`."""
    out = open(log, "ab") if isinstance(log, Path) else log
    try:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        if isinstance(log, Path):
            out.close()


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
    """SIGTERM the process group, SIGKILL it after `timeout`; returns the exit status."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Also reap stragglers the leader left behind in its group.
    _signal_group(proc, signal.SIGKILL)
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        return None


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_marked(variable: str, value: str) -> list[int]:
    """SIGKILL every process whose environment holds variable=value; returns their pids.

    Process groups and PDEATHSIG miss grandchildren that outlive a SIGKILLed parent; an environment
    marker is inherited by all of them, so a restarted runner can sweep what its predecessor left.
    """
    needle = f"{variable}={value}".encode() + b"\0"
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if (b"\0" + environ).find(b"\0" + needle) >= 0:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def kill_marked_cmdline(marker: str) -> list[int]:
    """SIGKILL every process (but this one) whose command line contains `marker`; returns their pids."""
    needle, killed = marker.encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
        except OSError:
            pass
    return killed


class ComponentError(RuntimeError):
    """A component did not start again, or is not one of ours; carries the tail of its log."""


@dataclass
class _Component:
    argv: list[str]
    log: Path
    env: dict[str, str] | None
    cwd: Path | None
    ready: Callable[[], bool] | None
    proc: subprocess.Popen[bytes] | None


class Components:
    """Named children, each kept with the argv, environment and log it was spawned with, so one can be
    stopped and started again exactly as it was (a component restart: kube-apiserver, kubelet, containerd).
    The control plane and the node each hold one; `ready` is the probe start() waits on."""

    def __init__(self) -> None:
        self._by_name: dict[str, _Component] = {}

    def spawn(self, name: str, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None,
              cwd: Path | None = None, ready: Callable[[], bool] | None = None) -> subprocess.Popen[bytes]:
        c = _Component(list(argv), log, dict(env) if env is not None else None, cwd, ready, None)
        self._by_name[name] = c
        c.proc = spawn(c.argv, log=log, env=c.env, cwd=cwd)
        return c.proc

    def set_ready(self, name: str, ready: Callable[[], bool]) -> None:
        self._component(name).ready = ready

    def __contains__(self, name: object) -> bool:
        c = self._by_name.get(name) if isinstance(name, str) else None
        return c is not None and c.proc is not None

    def names(self) -> list[str]:
        """Every component spawned, running or stopped, in spawn order."""
        return list(self._by_name)

    def pids(self) -> dict[str, int]:
        return {n: c.proc.pid for n, c in self._by_name.items() if c.proc is not None}

    def _component(self, name: str) -> _Component:
        if name not in self._by_name:
            raise ComponentError(f"no component {name!r} (have {', '.join(self._by_name) or 'none'})")
        return self._by_name[name]

    def stop(self, name: str, timeout: float = 10.0) -> int | None:
        """SIGTERM (then SIGKILL) the component's process group; its argv and env are kept for start()."""
        c = self._component(name)
        proc, c.proc = c.proc, None
        return stop(proc, timeout) if proc is not None else None

    def start(self, name: str, timeout: float = 120.0) -> subprocess.Popen[bytes]:
        """Spawn a stopped component again with the same argv, env and log; return once its `ready` probe
        passes (exceptions from the probe count as not yet)."""
        c = self._component(name)
        if c.proc is not None and c.proc.poll() is None:
            raise ComponentError(f"{name} is running (pid {c.proc.pid}); stop it first")
        c.proc = proc = spawn(c.argv, log=c.log, env=c.env, cwd=c.cwd)
        deadline, last = time.monotonic() + timeout, ""
        while c.ready is not None:
            if proc.poll() is not None:
                raise ComponentError(f"{name} exited with status {proc.returncode} after a restart:\n"
                                     f"{tail(c.log)}")
            try:
                if c.ready():
                    break
            except Exception as exc:  # noqa: BLE001 - a probe that raises is a component not ready yet
                last = str(exc)
            if time.monotonic() > deadline:
                raise ComponentError(f"{name} not ready {timeout:.0f}s after a restart ({last}):\n{tail(c.log)}")
            time.sleep(0.2)
        return proc

    def restart(self, name: str, down: float = 0.0, timeout: float = 120.0) -> subprocess.Popen[bytes]:
        """stop(), `down` seconds with it stopped, start()."""
        self.stop(name)
        time.sleep(down)
        return self.start(name, timeout)

    def stop_all(self, order: Sequence[str] | None = None) -> None:
        """Stop every running component, in `order` (default: reverse spawn order), and forget them all."""
        names = list(order) if order is not None else list(reversed(self._by_name))
        for name in names + [n for n in reversed(self._by_name) if n not in names]:
            if name in self:
                self.stop(name)
        self._by_name.clear()


def tail(path: Path, limit: int = 3000) -> str:
    """The end of a component's log, for an error that says why it did not start."""
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""
