"""Control plane + pod runner as one thing, in-process (tests) or in the background (hack/cluster).

    python -m devenv.cluster serve STATE_DIR   # what `hack/cluster up` runs detached

`serve` writes STATE_DIR/state.json ({"pid", "kubeconfig", "server", "workdir"}) once the cluster is
ready and keeps running until SIGTERM/SIGINT, then stops everything it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from devenv import controlplane
from devenv.podrunner import PodRunner
from devenv.rest import Rest


@dataclass
class LocalCluster:
    control_plane: controlplane.ControlPlane
    runner: PodRunner

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig


@contextlib.contextmanager
def running(directory: Path | None = None, keep_dir: bool = False) -> Iterator[LocalCluster]:
    """Start control plane and pod runner; stop both (and every pod process) on exit."""
    cp = controlplane.start(directory=directory)
    runner: PodRunner | None = None
    try:
        runner = PodRunner(Rest.from_kubeconfig(cp.kubeconfig), cp.ca_cert.read_bytes(),
                           cp.directory / "podrunner").start()
        yield LocalCluster(cp, runner)
    finally:
        if runner:
            runner.stop()
        cp.stop()
        if not keep_dir:
            shutil.rmtree(cp.directory, ignore_errors=True)


def serve(state_dir: Path) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    state = state_dir / "state.json"
    state.unlink(missing_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    workdir = state_dir / "cluster"
    shutil.rmtree(workdir, ignore_errors=True)
    started = time.monotonic()
    with running(directory=workdir, keep_dir=True) as cl:
        # A stable path for people: the temp ports change with every `up`.
        kubeconfig = state_dir / "kubeconfig"
        shutil.copy2(cl.kubeconfig, kubeconfig)
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "pid": os.getpid(), "kubeconfig": str(kubeconfig), "server": cl.control_plane.server,
            "workdir": str(workdir), "assets": str(cl.control_plane.assets),
            "startSeconds": round(time.monotonic() - started, 1),
        }, indent=2))
        tmp.rename(state)
        print(f"cluster ready in {time.monotonic() - started:.1f}s; KUBECONFIG={kubeconfig}", flush=True)
        stop.wait()
        print("stopping", flush=True)
    state.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv.cluster")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run control plane + pod runner until SIGTERM")
    p.add_argument("state_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return serve(args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
