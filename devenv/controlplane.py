"""A real, throw-away Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager (every
default controller, node CIDRs, a cluster signer), kube-scheduler.

Binaries come from KUBEBUILDER_ASSETS (hack/build-k8s.sh builds them). etcd and the controllers listen
on free loopback ports; the apiserver listens on the node's address (the bridge hostnet.up made), which
is what pods reach through the `kubernetes` Service and what the kubeconfig names. Everything lives in
one directory. Admission as a real cluster has it: NodeRestriction, ServiceAccount (projected tokens),
PodSecurity (`restricted` namespaces really reject privileged pods), NamespaceLifecycle; authorization
Node,RBAC.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from devenv import hostnet, kubeconfig, pki, processes
from devenv.postgres import free_port

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
            "kubectl", "helm", "coredns")


class ControlPlaneError(RuntimeError):
    """A binary is missing or a component did not become ready; carries the tail of its log."""


def find_assets() -> Path:
    """KUBEBUILDER_ASSETS, checked to hold every binary we run."""
    env = os.environ.get("KUBEBUILDER_ASSETS")
    if not env:
        raise ControlPlaneError(
            "KUBEBUILDER_ASSETS is not set; run the tests through hack/test.sh, or export "
            "KUBEBUILDER_ASSETS=$(hack/build-k8s.sh)")
    assets = Path(env)
    missing = [b for b in BINARIES if not os.access(assets / b, os.X_OK)]
    if missing:
        raise ControlPlaneError(f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}; "
                                "rebuild with hack/build-k8s.sh")
    return assets


@dataclass
class ControlPlane:
    """A running control plane. `kubeconfig` is the admin's (client cert in group system:masters)."""

    directory: Path
    assets: Path
    server: str
    kubeconfig: Path
    ca_cert: Path
    etcd_url: str
    _procs: processes.Components = field(default_factory=processes.Components)

    @property
    def kubectl(self) -> Path:
        return self.assets / "kubectl"

    @property
    def helm(self) -> Path:
        return self.assets / "helm"

    def log_path(self, component: str) -> Path:
        return self.directory / "logs" / f"{component}.log"

    def pids(self) -> dict[str, int]:
        return self._procs.pids()

    @property
    def components(self) -> processes.Components:
        """etcd, kube-apiserver, kube-controller-manager, kube-scheduler: each can be stopped and started
        again with the argv and env it was spawned with; start() waits on the readiness probe it had."""
        return self._procs

    def stop(self) -> None:
        """Stop the components in reverse start order. Safe to call twice."""
        self._procs.stop_all()


class _Probe:
    """HTTPS GETs against a component with the admin client certificate."""

    def __init__(self, ca: Path, client: pki.KeyPair):
        self._ctx = ssl.create_default_context(cafile=str(ca))
        self._ctx.load_cert_chain(str(client.cert), str(client.key))

    def get(self, url: str, insecure: bool = False) -> tuple[int, bytes]:
        ctx = self._ctx
        if insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def _wait(what: str, check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ControlPlaneError(f"{what} exited with status {proc.returncode}:\n{processes.tail(log)}")
        try:
            if check():
                return
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise ControlPlaneError(f"{what} not ready after {timeout:.0f}s ({last}):\n{processes.tail(log)}")


def start(assets: Path | None = None, directory: Path | None = None, timeout: float = 120.0) -> ControlPlane:
    """Start etcd, kube-apiserver and kube-controller-manager; return once a new namespace gets its
    default ServiceAccount (the last thing pods need). On failure everything started is stopped."""
    assets = assets or find_assets()
    top = directory or Path(tempfile.mkdtemp(prefix="schemagate-k8s-"))
    top.mkdir(parents=True, exist_ok=True)
    certs, logs = top / "pki", top / "logs"
    certs.mkdir(exist_ok=True)
    logs.mkdir(exist_ok=True)

    ca = pki.make_ca(certs)
    serving = pki.issue(ca, certs, "apiserver", "/CN=kube-apiserver", server=True, sans=pki.APISERVER_SANS)
    admin = pki.issue(ca, certs, "admin", "/O=system:masters/CN=admin")
    kcm_client = pki.issue(ca, certs, "kube-controller-manager", "/CN=system:kube-controller-manager")
    scheduler_client = pki.issue(ca, certs, "kube-scheduler", "/CN=system:kube-scheduler")
    # `kubectl logs/exec/port-forward` go apiserver -> kubelet with this certificate.
    kubelet_client = pki.issue(ca, certs, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet")
    signer = pki.make_signing_key(certs)

    etcd_port, etcd_peer, api_port, kcm_port, sched_port = (free_port() for _ in range(5))
    server = f"https://{hostnet.NODE_IP}:{api_port}"
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    ca_pem = ca.cert.read_bytes()
    admin_kubeconfig = kubeconfig.write(top / "admin.kubeconfig", kubeconfig.render(
        server, ca_pem, user="admin", client_cert_pem=admin.cert.read_bytes(),
        client_key_pem=admin.key.read_bytes()))
    kcm_kubeconfig = kubeconfig.write(top / "kube-controller-manager.kubeconfig", kubeconfig.render(
        server, ca_pem, user="system:kube-controller-manager",
        client_cert_pem=kcm_client.cert.read_bytes(), client_key_pem=kcm_client.key.read_bytes()))
    sched_kubeconfig = kubeconfig.write(top / "kube-scheduler.kubeconfig", kubeconfig.render(
        server, ca_pem, user="system:kube-scheduler",
        client_cert_pem=scheduler_client.cert.read_bytes(), client_key_pem=scheduler_client.key.read_bytes()))

    cp = ControlPlane(top, assets, server, admin_kubeconfig, ca.cert, etcd_url)
    probe = _Probe(ca.cert, admin)
    try:
        log = logs / "etcd.log"
        ready = lambda: b'"health":"true"' in urllib.request.urlopen(f"{etcd_url}/health", timeout=2).read()  # noqa: E731
        proc = cp._procs.spawn("etcd", [
            str(assets / "etcd"), "--name=default", f"--data-dir={top / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync=true", "--log-level=warn",
        ], log=log, ready=ready)
        _wait("etcd", ready, proc, log, timeout)

        log = logs / "kube-apiserver.log"
        ready = lambda: probe.get(f"{server}/readyz")[0] == 200  # noqa: E731
        proc = cp._procs.spawn("kube-apiserver", [
            str(assets / "kube-apiserver"),
            f"--etcd-servers={etcd_url}", f"--bind-address={hostnet.NODE_IP}",
            f"--advertise-address={hostnet.NODE_IP}",
            f"--secure-port={api_port}", f"--cert-dir={certs}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={ca.cert}", "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={hostnet.SERVICE_CIDR}", "--allow-privileged=true",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={signer.cert}", f"--service-account-signing-key-file={signer.key}",
            "--enable-admission-plugins=NodeRestriction,PodSecurity,ServiceAccount,NamespaceLifecycle",
            f"--kubelet-client-certificate={kubelet_client.cert}", f"--kubelet-client-key={kubelet_client.key}",
            f"--kubelet-certificate-authority={ca.cert}", "--kubelet-preferred-address-types=InternalIP",
            "--profiling=false", "--v=1",
            # One apiserver at a fixed address: the `kubernetes` Service's endpoint is written once, below,
            # and stays while it restarts. The default (lease) reconciler removes it at every SIGTERM; the
            # pods then reach no apiserver until kube-proxy, whose watches back off up to a minute while the
            # apiserver is away, sees it again: measured 18–59 s after /readyz on this node.
            "--endpoint-reconciler-type=none",
        ], log=log, ready=ready)
        _wait("kube-apiserver", ready, proc, log, timeout)
        _write_kubernetes_endpoints(cp, api_port)

        log = logs / "kube-controller-manager.log"
        ready = lambda: probe.get(f"https://127.0.0.1:{kcm_port}/healthz", insecure=True)[0] == 200  # noqa: E731
        proc = cp._procs.spawn("kube-controller-manager", [
            str(assets / "kube-controller-manager"),
            f"--kubeconfig={kcm_kubeconfig}", f"--authentication-kubeconfig={kcm_kubeconfig}",
            f"--authorization-kubeconfig={kcm_kubeconfig}", "--leader-elect=false",
            "--controllers=*", "--use-service-account-credentials=true",
            "--allocate-node-cidrs=true", f"--cluster-cidr={hostnet.CLUSTER_CIDR}", "--node-cidr-mask-size=24",
            f"--service-cluster-ip-range={hostnet.SERVICE_CIDR}",
            f"--cluster-signing-cert-file={ca.cert}", f"--cluster-signing-key-file={ca.key}",
            f"--service-account-private-key-file={signer.key}", f"--root-ca-file={ca.cert}",
            "--bind-address=127.0.0.1", f"--secure-port={kcm_port}", f"--cert-dir={certs / 'kcm'}",
            "--v=1",
        ], log=log, ready=ready)
        _wait("kube-controller-manager", ready, proc, log, timeout)
        _wait_default_serviceaccount(cp, proc, log, timeout)

        log = logs / "kube-scheduler.log"
        ready = lambda: probe.get(f"https://127.0.0.1:{sched_port}/healthz", insecure=True)[0] == 200  # noqa: E731
        proc = cp._procs.spawn("kube-scheduler", [
            str(assets / "kube-scheduler"), f"--kubeconfig={sched_kubeconfig}",
            f"--authentication-kubeconfig={sched_kubeconfig}", f"--authorization-kubeconfig={sched_kubeconfig}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={sched_port}", "--v=1",
        ], log=log, ready=ready)
        _wait("kube-scheduler", ready, proc, log, timeout)
    except BaseException:
        cp.stop()
        raise
    return cp


def kubernetes_endpoints(api_port: int) -> str:
    """The `kubernetes` Service's Endpoints and EndpointSlice as the apiserver's own reconciler writes
    them (the slice its own, so the Endpoints are not mirrored), at this control plane's one address."""
    return f"""\
apiVersion: v1
kind: Endpoints
metadata:
  name: kubernetes
  namespace: default
  labels: {{endpointslice.kubernetes.io/skip-mirror: "true"}}
subsets:
- addresses: [{{ip: {hostnet.NODE_IP}}}]
  ports: [{{name: https, port: {api_port}, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes
  namespace: default
  labels: {{kubernetes.io/service-name: kubernetes}}
addressType: IPv4
endpoints:
- addresses: [{hostnet.NODE_IP}]
  conditions: {{ready: true}}
ports: [{{name: https, port: {api_port}, protocol: TCP}}]
"""


def _write_kubernetes_endpoints(cp: ControlPlane, api_port: int) -> None:
    done = subprocess.run([str(cp.kubectl), f"--kubeconfig={cp.kubeconfig}", "apply", "-f", "-"],
                          input=kubernetes_endpoints(api_port), text=True, check=False, capture_output=True)
    if done.returncode != 0:
        raise ControlPlaneError(f"the kubernetes Service's endpoints were refused: {done.stderr.strip()}")


def _wait_default_serviceaccount(cp: ControlPlane, proc: subprocess.Popen[bytes], log: Path,
                                 timeout: float) -> None:
    """Pods in a fresh namespace are refused until its `default` ServiceAccount exists."""
    kubectl = [str(cp.kubectl), f"--kubeconfig={cp.kubeconfig}"]
    name = f"schemagate-ready-{uuid.uuid4().hex[:6]}"
    subprocess.run([*kubectl, "create", "namespace", name], check=True, capture_output=True)

    def has_default_sa() -> bool:
        out = subprocess.run([*kubectl, "-n", name, "get", "serviceaccount,configmap", "-o", "json"],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            return False
        kinds = {(i["kind"], i["metadata"]["name"]) for i in json.loads(out.stdout)["items"]}
        return ("ServiceAccount", "default") in kinds and ("ConfigMap", "kube-root-ca.crt") in kinds

    _wait("kube-controller-manager (default ServiceAccount)", has_default_sa, proc, log, timeout)
    subprocess.run([*kubectl, "delete", "namespace", name, "--wait=false"], check=False, capture_output=True)


@contextlib.contextmanager
def running(assets: Path | None = None, keep_dir: bool = False) -> Iterator[ControlPlane]:
    """Start a control plane; stop it and remove its directory on exit, whatever happened (atexit
    too, for a KeyboardInterrupt that skips the finally of a generator never resumed)."""
    cp = start(assets)
    atexit.register(cp.stop)
    try:
        yield cp
    finally:
        cp.stop()
        atexit.unregister(cp.stop)
        if not keep_dir:
            shutil.rmtree(cp.directory, ignore_errors=True)
