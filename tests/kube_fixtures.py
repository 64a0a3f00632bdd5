"""pytest plugin: a Kubernetes cluster for the test session, and a fresh namespace per test.

- SCHEMAGATE_E2E_KUBECONFIG set: use that cluster (kind, say); nothing is started, there is no pod
  runner (`kube.runner is None`), kubectl/helm come from PATH unless KUBEBUILDER_ASSETS has them.
- otherwise: our own control plane from KUBEBUILDER_ASSETS (hack/build-k8s.sh) plus the local pod
  runner, one per session. Missing binaries fail the tests with the reason; nothing skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

T = TypeVar("T")


@dataclass
class Kube:
    kubeconfig: Path
    api: Any  # kubernetes.client.ApiClient, admin
    kubectl_bin: str
    helm_bin: str
    runner: Any  # devenv.podrunner.PodRunner | None on an external cluster
    # The operator image pods should use: what hack/kind-e2e.sh loaded into kind, or any image
    # the local pod runner maps to this repository's CLI.
    image: str = os.environ.get("SCHEMAGATE_E2E_IMAGE", "schemagate:dev")

    @property
    def local(self) -> bool:
        return self.runner is not None

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster; failures show its stderr."""
        proc = subprocess.run([self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args], input=input,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.helm_bin, f"--kubeconfig={self.kubeconfig}", *args],
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        """A pod's container output: from the pod runner locally, from kubectl on a real cluster."""
        if self.runner is not None:
            return self.runner.logs(namespace, pod, container)
        args = ["-n", namespace, "logs", pod, "--all-containers" if container is None else f"-c={container}"]
        return self.kubectl(*args, check=False).stdout


def wait_until(what: str, probe: Callable[[], T], timeout: float = 60, interval: float = 0.25) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {last!r}")


def processes_with(marker: str) -> list[int]:
    """PIDs of live processes whose command line contains `marker` (to prove nothing was left running)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _tool(name: str) -> str:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and os.access(Path(assets) / name, os.X_OK):
        return str(Path(assets) / name)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found in KUBEBUILDER_ASSETS or PATH; run hack/build-k8s.sh")
    return found


def _api_client(kubeconfig: Path) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    external = os.environ.get("SCHEMAGATE_E2E_KUBECONFIG")
    if external:
        path = Path(external)
        if not path.is_file():
            pytest.fail(f"SCHEMAGATE_E2E_KUBECONFIG={external} is not a file")
        api = _api_client(path)
        yield Kube(path, api, _tool("kubectl"), _tool("helm"), None)
        api.close()
        return

    from devenv import cluster, controlplane

    try:
        controlplane.find_assets()
    except controlplane.ControlPlaneError as exc:
        pytest.fail(str(exc))
    try:
        ctx = cluster.running()
        local = ctx.__enter__()
    except controlplane.ControlPlaneError as exc:
        pytest.fail(f"the local control plane did not start: {exc}")
    try:
        api = _api_client(local.kubeconfig)
        cp = local.control_plane
        yield Kube(local.kubeconfig, api, str(cp.kubectl), str(cp.helm), local.runner)
        api.close()
    finally:
        ctx.__exit__(None, None, None)


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists; deleted (not awaited) after the test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.kubectl("create", "namespace", name)
    wait_until(f"ServiceAccount default in namespace {name}",
               lambda: kube.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0,
               timeout=30)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)
