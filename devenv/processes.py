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
from pathlib import Path
from typing import IO, Mapping, Sequence

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
