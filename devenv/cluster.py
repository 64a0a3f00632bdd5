"""A single-node Kubernetes cluster on this machine, as one thing: the node's network, the control plane,
a real node (containerd, runc, CNI, kubelet, kube-proxy), CoreDNS, and our images imported into it.

    python -m devenv.cluster serve STATE_DIR    # what `hack/cluster up` runs detached
    python -m devenv.cluster cleanup STATE_DIR  # put the machine back after a serve that was killed

`serve` writes STATE_DIR/state.json once the node is Ready and DNS answers, and runs until
SIGTERM/SIGINT/SIGHUP, then stops everything and restores the machine. Before it changes anything it
records the machine (hostnet.snapshot) in STATE_DIR/cluster/host-before.json; `cleanup` uses that record.
Only one such cluster runs on a machine at a time: kube-proxy's iptables chains are global.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from devenv import controlplane, hostnet, images, node, pki, processes
from devenv.images import Image

COREDNS_IMAGE = "localhost/coredns:schemagate"
COREDNS_MANIFEST = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # Cluster names only: no `forward`, so nothing is asked of a resolver beyond this machine. Port
  # 1053: a non-root container gets no effective NET_BIND_SERVICE; the Service maps 53 to it.
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
        }
        cache 5
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: coredns
        image: IMAGE
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: DNS_IP
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
"""


class ClusterError(RuntimeError):
    """The cluster did not come up; the message says which part and carries its log's tail."""


@dataclass
class LocalCluster:
    directory: Path
    control_plane: controlplane.ControlPlane
    node: node.Node
    images: dict[str, Image]
    image_digests: dict[str, str]

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    def _components(self, name: str) -> processes.Components:
        for group in (self.control_plane.components, self.node.components):
            if name in group.names():
                return group
        raise ClusterError(f"no component {name!r}: the control plane has "
                           f"{', '.join(self.control_plane.components.names())}, the node "
                           f"{', '.join(self.node.components.names())}")

    def stop_component(self, name: str) -> None:
        """Stop one process of the cluster (kube-apiserver, kubelet, containerd, ...) as a crash or a
        maintenance stop would: SIGTERM, SIGKILL after 10 s. What it runs (containers, for containerd) stays."""
        self._components(name).stop(name)

    def start_component(self, name: str, timeout: float = 120.0) -> None:
        """Start a stopped component again with the argv and env it first had; return once its readiness
        probe passes (the apiserver's /readyz, the kubelet's /healthz, containerd answering)."""
        self._components(name).start(name, timeout)

    def restart(self, *names: str, down: float = 0.0, timeout: float = 120.0) -> None:
        """Stop `names` in the order given, keep them down `down` seconds, start them in reverse order."""
        for name in names:
            self.stop_component(name)
        time.sleep(down)
        for name in reversed(names):
            self.start_component(name, timeout)

    def import_image(self, image: Image) -> str:
        """An image built here, loaded into the node's containerd (devenv.node.Node.import_image)."""
        return self.node.import_image(image)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run([str(self.control_plane.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
                              input=input, capture_output=True, text=True, check=False, timeout=120)
        if proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout


def coredns_image(assets: Path, cache: Path) -> Image:
    """CoreDNS from hack/build-k8s.sh (a static binary) in an image of its own, built here."""
    binary = assets / "coredns"
    key = images._digest(binary.read_bytes())
    archive = cache / "images" / f"coredns-{key}.oci.tar"
    if archive.exists():
        return Image(COREDNS_IMAGE, archive)
    b = images.Buildah(cache / "buildah")
    c = b("buildah from scratch", "from", "scratch")
    try:
        b("copy coredns", "copy", c, str(binary), "/coredns")
        b("config coredns", "config", "--entrypoint", '["/coredns"]', "--user", "65532", c)
        b("commit coredns", "commit", "--quiet", c, COREDNS_IMAGE)
    finally:
        b("remove working container", "rm", c)
    b.push_archive(COREDNS_IMAGE, archive)
    return Image(COREDNS_IMAGE, archive)


def _wait(what: str, check: Callable[[], bool], timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except ClusterError:
            pass
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise ClusterError(f"{what} after {timeout:.0f}s\n{tail}")


def _node_ready(cl: LocalCluster) -> bool:
    out = cl.kubectl("get", "node", node.NODE_NAME, "-o",
                     "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
    return out.strip() == "True"


def _dns_ready(cl: LocalCluster) -> bool:
    out = cl.kubectl("-n", "kube-system", "get", "deployment", "coredns", "-o", "jsonpath={.status.readyReplicas}")
    return out.strip() == "1"


def teardown(directory: Path, assets: Path | None, before: hostnet.Snapshot) -> None:
    """Everything a cluster in `directory` may have left, whether or not its processes still run."""
    n = node.Node(directory, assets or Path("."))
    n.stop()
    if assets is not None:
        node.cleanup_kube_proxy(assets, directory / "logs" / "kube-proxy-cleanup.log")
    hostnet.restore(before)


@contextlib.contextmanager
def running(directory: Path | None = None, keep_dir: bool = False,
            cache: Path | None = None) -> Iterator[LocalCluster]:
    """Bring the whole cluster up; on exit stop it and put the machine back as it was."""
    assets = controlplane.find_assets()
    cache = cache or images.cache_dir()
    # Images first: building them changes nothing on the machine, and is the slow part when cold.
    built = {"pause": images.pause_image(cache), "schemagate": images.schemagate_image(cache),
             "coredns": coredns_image(assets, cache)}
    built.update({img.ref: img for img in images.app_images(cache)})
    sweep_stale()
    top = directory or Path(os.environ.get("TMPDIR", "/tmp")) / f"{SESSION_PREFIX}{os.getpid()}"
    top.mkdir(parents=True, exist_ok=True)
    # Another cluster's bridge: refuse before recording anything, so no teardown touches what is theirs.
    hostnet.refuse_if_taken()
    before = hostnet.snapshot()
    (top / "host-before.json").write_text(before.to_json())
    (top / "assets").write_text(str(assets))
    cp: controlplane.ControlPlane | None = None
    nd: node.Node | None = None
    try:
        hostnet.up()
        cp = controlplane.start(assets, directory=top)
        ca = pki.KeyPair(cp.ca_cert, cp.ca_cert.with_suffix(".key"))
        nd = node.start(top, assets, cp.server, ca, list(built.values()))
        digests = {name: images.archive_digest(img.archive) for name, img in built.items()}
        cl = LocalCluster(top, cp, nd, built, digests)
        _wait("the node is not Ready", lambda: _node_ready(cl), 90, nd.log_path("kubelet"))
        cl.kubectl("apply", "-f", "-", input=COREDNS_MANIFEST.replace("IMAGE", COREDNS_IMAGE)
                   .replace("DNS_IP", hostnet.DNS_SERVICE_IP))
        try:
            _wait("CoreDNS is not ready", lambda: _dns_ready(cl), 120, nd.log_path("kubelet"))
        except ClusterError as exc:
            logs = subprocess.run([str(cp.kubectl), f"--kubeconfig={cp.kubeconfig}", "-n", "kube-system", "logs",
                                   "deployment/coredns", "--tail=30"], capture_output=True, text=True, check=False)
            raise ClusterError(f"{exc}\n--- coredns log:\n{logs.stdout}{logs.stderr}") from None
        yield cl
    finally:
        if nd is not None:
            nd.stop()
        if cp is not None:
            cp.stop()
        teardown(top, assets, before)
        (top / "host-before.json").unlink(missing_ok=True)
        if not keep_dir:
            _remove_tree(top)


SESSION_PREFIX = "schemagate-cluster-"


def sweep_stale() -> None:
    """Clean up after session clusters whose process died without its teardown (a SIGKILLed pytest):
    their directory is named after the pid."""
    for top in Path(os.environ.get("TMPDIR", "/tmp")).glob(f"{SESSION_PREFIX}*"):
        pid = top.name.removeprefix(SESSION_PREFIX)
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            cleanup_dir(top)
            _remove_tree(top)


def _remove_tree(top: Path) -> None:
    node._unmount_under(top)
    shutil.rmtree(top, ignore_errors=True)


def serve(state_dir: Path) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    state = state_dir / "state.json"
    state.unlink(missing_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    workdir = state_dir / "cluster"
    if (workdir / "host-before.json").exists():
        cleanup(state_dir)
    _remove_tree(workdir)
    started = time.monotonic()
    with running(directory=workdir, keep_dir=True) as cl:
        # A stable path for people: the ports change with every `up`.
        kubeconfig = state_dir / "kubeconfig"
        shutil.copy2(cl.kubeconfig, kubeconfig)
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "pid": os.getpid(), "kubeconfig": str(kubeconfig), "server": cl.control_plane.server,
            "workdir": str(workdir), "assets": str(cl.control_plane.assets),
            "image": images.SCHEMAGATE_IMAGE, "imageDigest": cl.image_digests["schemagate"],
            "startSeconds": round(time.monotonic() - started, 1),
        }, indent=2))
        tmp.rename(state)
        print(f"cluster ready in {time.monotonic() - started:.1f}s; KUBECONFIG={kubeconfig}", flush=True)
        stop.wait()
        print("stopping", flush=True)
    (workdir / "host-before.json").unlink(missing_ok=True)
    return 0


def cleanup(state_dir: Path) -> int:
    """After a serve that died without its teardown: stop what it left, restore the machine."""
    cleanup_dir(state_dir / "cluster")
    return 0


def cleanup_dir(workdir: Path) -> None:
    """Stop whatever a cluster in `workdir` left running and restore the machine from its record."""
    record = workdir / "host-before.json"
    if not record.exists():
        return
    assets_file = workdir / "assets"
    assets = Path(assets_file.read_text()) if assets_file.exists() else None
    processes.kill_marked_cmdline(str(workdir))
    teardown(workdir, assets, hostnet.Snapshot.from_json(record.read_text()))
    record.unlink()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devenv.cluster")
    p.add_argument("verb", choices=["serve", "cleanup"])
    p.add_argument("state_dir", type=Path)
    a = p.parse_args(argv)
    try:
        return serve(a.state_dir) if a.verb == "serve" else cleanup(a.state_dir)
    except (ClusterError, controlplane.ControlPlaneError, node.NodeError, images.ImageBuildError,
            hostnet.HostNetError) as exc:
        print(f"devenv.cluster: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
