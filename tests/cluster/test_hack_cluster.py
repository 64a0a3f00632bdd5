"""hack/cluster: the background cluster people use (`up`, `status`, `down`), with the real kubectl, and
that `down` leaves the machine as `up` found it, even after the cluster was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from kube_fixtures import processes_with, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.owns_machine]
REPO = Path(__file__).resolve().parents[2]


def test_up_gives_a_kubeconfig_where_a_job_completes_and_down_leaves_nothing(tmp_path: Path,
                                                                           machine_to_itself: None):
    from devenv import hostnet

    if not os.environ.get("KUBEBUILDER_ASSETS"):
        pytest.fail("KUBEBUILDER_ASSETS is not set; run through hack/test.sh")
    env = dict(os.environ, SCHEMAGATE_CLUSTER_DIR=str(tmp_path / "run"))

    def cluster(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(REPO / "hack" / "cluster"), *args], env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"hack/cluster {' '.join(args)} failed: {proc.stderr}")
        return proc

    kubectl_bin = str(Path(os.environ["KUBEBUILDER_ASSETS"]) / "kubectl")
    marker = f"schemagate-orphan-{uuid.uuid4().hex[:8]}"
    before = hostnet.snapshot()
    try:
        kubeconfig = cluster("up").stdout.strip()
        assert Path(kubeconfig).is_file()

        def kubectl(*args: str, input: str | None = None) -> str:
            proc = subprocess.run([kubectl_bin, f"--kubeconfig={kubeconfig}", *args], input=input,
                                  capture_output=True, text=True, timeout=120, check=False)
            assert proc.returncode == 0, proc.stderr
            return proc.stdout

        assert "schemagate-node" in kubectl("get", "nodes")
        status = cluster("status").stdout
        assert "Ready" in status and "containerd://" in status

        def job(name: str, command: list[str]) -> str:
            return yaml.safe_dump({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                                   "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                                       {"name": "c", "image": "localhost/schemagate:dev", "command": command}]}}}})

        # A container, which outlives its containerd and kubelet when the cluster is SIGKILLed...
        kubectl("apply", "-f", "-", input=job("sleeper", ["sh", "-c", "sleep 300; echo", marker]))
        wait_until("the sleeper process", lambda: processes_with(marker))
        os.kill(int((tmp_path / "run" / "cluster.pid").read_text()), signal.SIGKILL)
        wait_until("hack/cluster to notice", lambda: cluster("status", check=False).returncode == 3)

        # ...is swept by the next `up`, which gives a fresh, working cluster.
        kubeconfig = cluster("up").stdout.strip()
        assert processes_with(marker) == []
        kubectl("apply", "-f", "-", input=job("hello", ["sh", "-c", "echo hello"]))
        kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=60s")
        state = json.loads((tmp_path / "run" / "state.json").read_text())
        assert state["kubeconfig"] == kubeconfig
    finally:
        cluster("down", check=False)
    assert cluster("status", check=False).returncode == 3
    assert processes_with(str(tmp_path / "run")) == []
    assert processes_with(marker) == []
    # Links, iptables (every table), mounts, network namespaces and the sysctls the kubelet writes.
    assert before.differences(hostnet.snapshot()) == {}
