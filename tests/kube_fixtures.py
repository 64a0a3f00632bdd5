"""pytest plugin: a Kubernetes cluster for the test session, and a fresh namespace per test.

- SCHEMAGATE_E2E_KUBECONFIG set: use that cluster (kind, say); nothing is started (`kube.cluster is
  None`), kubectl/helm come from PATH unless KUBEBUILDER_ASSETS has them, the image is
  SCHEMAGATE_E2E_IMAGE.
- otherwise: our own single-node cluster (devenv.cluster: control plane, a real kubelet on containerd,
  kube-proxy, CoreDNS) with our image built from the Dockerfile, one per session. Missing binaries or
  packages fail the tests with the reason; nothing skips.

Only one such cluster runs on a machine at a time, so the tests that start their own (hack/cluster,
hack/demo; marked `owns_machine`) run last and stop the session's cluster first (`session_cluster.stop()`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
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
    # devenv.cluster.LocalCluster, or on an xdist worker shared_cluster.RemoteCluster (what the controller's
    # broker does for it); None on an external cluster.
    cluster: Any
    # Our image: built from the Dockerfile and imported into the node (devenv.images), or what
    # hack/kind-e2e.sh loaded into kind.
    image: str = os.environ.get("SCHEMAGATE_E2E_IMAGE", "localhost/schemagate:dev")

    @property
    def local(self) -> bool:
        return self.cluster is not None

    def local_cluster(self) -> Any:
        """The session's own cluster (devenv.cluster.LocalCluster), for a test that stops and starts its
        processes: `stop_component`/`start_component`/`restart` of kube-apiserver, kubelet, containerd, …
        (the argv and env each was spawned with; start waits on its readiness probe)."""
        if self.cluster is None:
            pytest.fail("stopping a cluster component needs the local cluster (no SCHEMAGATE_E2E_KUBECONFIG)")
        return self.cluster

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster; failures show its stderr."""
        proc = subprocess.run([self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args], input=input,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def read(self, path: str, **query: str) -> Any:
        """GET an API path, as `kubectl get -o json` would show it; None when it is not there. For what
        tests poll: a kubectl is a process and its discovery per call (about 70 ms of CPU), several a second
        on every worker."""
        method, url, headers, _, _ = self.api.param_serialize(
            "GET", path, query_params=list(query.items()), header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        resp = self.api.call_api(method, url, header_params=headers, _request_timeout=30)
        body = resp.read()
        if resp.status == 404:
            return None
        if resp.status != 200:
            pytest.fail(f"GET {path} failed ({resp.status}): {body.decode(errors='replace')}")
        return json.loads(body)

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.helm_bin, f"--kubeconfig={self.kubeconfig}", *args],
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        """A pod's container output, as `kubectl logs` reads it from the kubelet."""
        args = ["-n", namespace, "logs", pod, "--all-containers" if container is None else f"-c={container}"]
        return self.kubectl(*args, check=False).stdout

    def load_image(self, ref: str, files: dict[str, str], path: str) -> str:
        """An image FROM our Debian base holding `files` under `path`, built here and imported into
        the node (a migrations image, say); returns `ref`."""
        if self.cluster is None:
            pytest.fail("building an image needs the local node (no SCHEMAGATE_E2E_KUBECONFIG)")
        from devenv import images

        self.cluster.import_image(images.files_image(ref, files, path))
        return ref

    def database_service(self, namespace: str, url: str, name: str = "postgres") -> str:
        """A Service `name` in `namespace` for the database at `url` (selectorless, its EndpointSlice
        naming the server's address), as a platform team fronts an outside database; returns `url` with
        its host replaced by the Service's DNS name, which pods resolve through CoreDNS."""
        import urllib.parse

        import yaml

        parts = urllib.parse.urlsplit(url)
        self.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all([
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
             "spec": {"ports": [{"name": "postgres", "port": 5432, "targetPort": parts.port}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
             "addressType": "IPv4", "ports": [{"name": "postgres", "port": parts.port, "protocol": "TCP"}],
             "endpoints": [{"addresses": [parts.hostname]}]}]))
        userinfo = parts.netloc.rsplit("@", 1)[0]
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@{name}.{namespace}.svc.cluster.local:5432"))

    def backup_volume(self, namespace: str, claim: str) -> Path:
        """A PersistentVolume for `namespace`/`claim` on the node's disk (what a local-path provisioner
        gives; no StorageClass runs here); returns its directory on this machine."""
        if self.cluster is None:
            pytest.fail("a node-local volume needs the local node (no SCHEMAGATE_E2E_KUBECONFIG)")
        import yaml

        where = self.cluster.directory / "volumes" / f"{namespace}-{claim}"
        where.mkdir(parents=True, exist_ok=True)
        where.chmod(0o777)  # as local-path-provisioner makes them: hostPath volumes get no fsGroup
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{namespace}-{claim}"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                     "hostPath": {"path": str(where), "type": "Directory"},
                     "claimRef": {"namespace": namespace, "name": claim}}}))
        return where


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


class SessionCluster:
    """The session's own cluster, started on first use and stoppable before a test that needs the
    machine to itself."""

    def __init__(self) -> None:
        self._ctx: Any = None
        self.current: Any = None
        self.failed: str | None = None  # why it did not start: the next test fails at once with it

    def get(self) -> Any:
        if self.failed:
            pytest.fail(self.failed)
        if self.current is None:
            from devenv import cluster, controlplane

            try:
                controlplane.find_assets()
                self._ctx = cluster.running()
                self.current = self._ctx.__enter__()
            except Exception as exc:  # every failure to start is the reason the tests fail
                self._ctx = None
                self.failed = f"the local cluster did not start: {exc}"
                pytest.fail(self.failed)
        return self.current

    def stop(self) -> None:
        if self._ctx is not None:
            ctx, self._ctx, self.current = self._ctx, None, None
            ctx.__exit__(None, None, None)


session_cluster = SessionCluster()


def _terminate_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def terminate_as_interrupt() -> None:
    """A SIGTERM (timeout, CI stopping the run) then runs the teardown, as Ctrl-C does; a SIGKILLed session
    is cleaned up by the next one (devenv.cluster.sweep_stale)."""
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)


def local_kube() -> Kube:
    """The session's own cluster, started if it is not running yet."""
    local = session_cluster.get()
    cp = local.control_plane
    return Kube(local.kubeconfig, _api_client(local.kubeconfig), str(cp.kubectl), str(cp.helm), local)


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest) -> Iterator[Kube]:
    external = os.environ.get("SCHEMAGATE_E2E_KUBECONFIG")
    if external:
        path = Path(external)
        if not path.is_file():
            pytest.fail(f"SCHEMAGATE_E2E_KUBECONFIG={external} is not a file")
        api = _api_client(path)
        yield Kube(path, api, _tool("kubectl"), _tool("helm"), None)
        api.close()
        return
    from shared_cluster import RemoteCluster, ask, broker_dir

    broker = broker_dir(request.config)
    if broker is not None:  # an xdist worker: the controller's broker owns the cluster (tests/shared_cluster.py)
        state = ask(broker, "cluster")
        path = Path(state["kubeconfig"])
        api = _api_client(path)
        yield Kube(path, api, state["kubectl"], state["helm"], RemoteCluster(broker, state))
        api.close()
        return
    terminate_as_interrupt()
    try:
        kube = local_kube()
        yield kube
        kube.api.close()
    finally:
        session_cluster.stop()


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists; deleted (not awaited) after the test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.kubectl("create", "namespace", name)
    wait_until(f"ServiceAccount default in namespace {name}",
               lambda: kube.read(f"/api/v1/namespaces/{name}/serviceaccounts/default") is not None, timeout=30)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def machine_to_itself() -> None:
    """For a test that starts its own cluster (hack/cluster, hack/demo): the session's is stopped first."""
    session_cluster.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a cluster of their own run after every test that uses the session's. The ones that
    have the session's cluster to themselves (`exclusive`) run first: xdist's worksteal gives each worker a
    run of the collection, so they fall to one worker and pass the turn on to each other
    (shared_cluster) instead of each waiting for the room to empty. The tests that need no cluster come
    last, so they fall to the other workers, which run them while the exclusive ones hold the cluster
    (instead of waiting for a turn with them queued behind); what is left at the end is shared tests that
    worksteal spreads."""
    from shared_cluster import takes_turn

    items.sort(key=lambda item: (item.get_closest_marker("owns_machine") is not None,
                                 item.get_closest_marker("exclusive") is None, not takes_turn(item)))
