"""hack/demo as a new user runs it: `up` ends with the example Ready and the gated rollout released,
prints how to poke at it, and `down` stops everything it started."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from chart_support import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.owns_machine]


def run_demo(verb: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Its output as a person sees it: stdout and stderr interleaved (in .stdout)."""
    return subprocess.run([str(REPO / "hack" / "demo"), verb], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_demo_up_shows_ready_and_the_held_then_released_rollout_and_down_stops_it(tmp_path: Path,
                                                                                machine_to_itself: None):
    from devenv import hostnet

    before = hostnet.snapshot()
    if not os.environ.get("KUBEBUILDER_ASSETS"):
        pytest.fail("KUBEBUILDER_ASSETS is not set: run the tests through hack/test.sh")
    demo = tmp_path / "demo"
    env = dict(os.environ, SCHEMAGATE_DEMO_DIR=str(demo))
    env.pop("KUBECONFIG", None)
    try:
        up = run_demo("up", env, timeout=600)
        out = up.stdout
        assert up.returncode == 0, out[-4000:]
        state = json.loads((demo / "cluster" / "state.json").read_text())
        pg = json.loads((demo / "postgres.json").read_text())
        kubeconfig = state["kubeconfig"]

        def kubectl(*args: str) -> str:
            return subprocess.run([str(Path(state["assets"]) / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
                                  capture_output=True, text=True, timeout=60, check=True).stdout

        row = kubectl("-n", "config-server", "get", "schemamigrations", "--no-headers").split()
        assert row[:5] == ["config-server", "2", "2", "Ready", "True"]
        # It showed the hold: the v2 pod not Ready while migration 2 ran, and then everything released.
        held = out[out.index("while migration 2 runs"):out.index("-- released:")]
        assert any(line.split()[1:4] == ["False", "False", "2"] for line in held.splitlines()
                   if line.startswith("config-server-")), held
        released = out[out.index("-- released:"):]
        pods = [line.split() for line in released.splitlines() if line.startswith("config-server-")]
        assert pods and all(p[1:4] == ["True", "True", "2"] for p in pods), released
        deploy = json.loads(kubectl("-n", "config-server", "get", "deployment", "config-server", "-o", "json"))
        assert deploy["status"].get("updatedReplicas") == deploy["status"].get("availableReplicas") == 2
        # The operator is the chart's two pods (one leads, one stands by), real containers of our image on
        # the node.
        ops = json.loads(kubectl("-n", "schemagate", "get", "pods", "-o", "json"))["items"]
        assert len(ops) == 2, [o["metadata"]["name"] for o in ops]
        for op in ops:
            assert op["status"]["phase"] == "Running" and op["spec"]["nodeName"] == "schemagate-node"
            assert op["spec"]["containers"][0]["image"] == "localhost/schemagate:dev"
            assert op["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
        leader = json.loads(kubectl("-n", "schemagate", "get", "lease", "schemagate-operator-leader", "-o", "json"))
        assert leader["spec"]["holderIdentity"].rpartition("_")[0] in {o["metadata"]["name"] for o in ops}
        # It printed real pods: the node's name and pod addresses.
        assert "schemagate-node" in out and "10.244.0." in out
        # How to poke at it and how to tear it down.
        assert f"kubeconfig:  {kubeconfig}" in up.stdout
        assert f"export KUBECONFIG={kubeconfig}" in up.stdout and "hack/demo down" in up.stdout
        assert pg["password"] not in out  # the password is not printed
        assert port_open(pg["port"])
        status = run_demo("status", env, timeout=60)
        assert status.returncode == 0 and "schemagate demo is running" in status.stdout
        again = run_demo("up", env, timeout=60)  # a second `up` changes nothing and says so
        assert again.returncode == 0 and "already up" in again.stdout
        assert kubectl("-n", "config-server", "get", "schemamigrations", "--no-headers").split()[1:5] == [
            "2", "2", "Ready", "True"]
    finally:
        down = run_demo("down", env, timeout=120)
    assert down.returncode == 0, down.stdout
    assert not demo.exists()
    assert not port_open(pg["port"]), "PostgreSQL still listening after hack/demo down"
    for pid in (state["pid"], pg["pid"]):
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} still running after hack/demo down"
    assert run_demo("status", env, timeout=60).returncode == 3
    assert before.differences(hostnet.snapshot()) == {}, "hack/demo down left the machine changed"
