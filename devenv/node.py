"""A real Kubernetes node on this machine: our own containerd (runc, CNI bridge), the kubelet and kube-proxy.

Everything lives under one directory: containerd's root, state and socket, the kubelet's root, pod logs,
the CNI configuration and IPAM data, runc's state. The settings these VMs need are explained where they
are set (see also shared notes/real-node.md). `stop()` removes every pod, container, mount and cgroup the
node made; hostnet.restore() then puts the network and sysctls back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devenv import hostnet, kubeconfig, pki, processes
from devenv.images import Image
from devenv.postgres import free_port

NODE_NAME = "schemagate-node"
CNI_BIN = Path("/usr/lib/cni")
K8S_NAMESPACE = "k8s.io"  # containerd's namespace for the CRI's images and containers
# The kubelet's pods live under their own cgroup root, so stop() can remove the whole tree.
CGROUP_ROOT = "schemagate"


def socket_dir(top: Path) -> Path:
    """containerd's sockets and the kubelet's root (which holds sockets too), at a short path of their
    own: a unix socket path has at most 108 bytes, and the cluster's directory may be a deep one (pytest's
    tmp_path)."""
    import hashlib

    return Path("/run") / f"schemagate-{hashlib.sha256(str(top.resolve()).encode()).hexdigest()[:10]}"


class NodeError(RuntimeError):
    """A node component is missing or did not start; carries the tail of its log."""


def require_tools() -> None:
    missing = [t for t in ("containerd", "runc", "ctr") if shutil.which(t) is None]
    missing += [f"{CNI_BIN}/{p}" for p in ("bridge", "host-local", "loopback", "portmap")
                if not (CNI_BIN / p).exists()]
    if missing:
        raise NodeError(f"{', '.join(missing)} not found; install Debian's containerd runc "
                        "containernetworking-plugins (hack/install-node.sh does)")


def containerd_config(top: Path, sandbox_image: str) -> str:
    c = top / "containerd"
    return f"""version = 2
root = "{c / 'root'}"
state = "{c / 'state'}"
# Snapshotters this node does not use only log errors at start.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{socket_dir(top) / 'containerd.sock'}"
[ttrpc]
  address = "{socket_dir(top) / 'containerd.sock.ttrpc'}"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{c / 'opt'}"
[plugins."io.containerd.grpc.v1.cri"]
  # Built here and imported (images.pause_image); never pulled.
  sandbox_image = "{sandbox_image}"
  # These VMs lack CAP_SYS_RESOURCE: a negative oom_score_adj is refused and every sandbox fails with
  # "can't get final child's PID from pipe: EOF" unless containerd keeps it at or above its own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{top / 'runc'}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{top / 'cni' / 'net.d'}"
"""


def cni_conflist(top: Path) -> dict[str, object]:
    return {
        "cniVersion": "0.4.0",
        "name": "schemagate",
        "plugins": [
            # The bridge exists already (hostnet.up) with the node's address; pods route through it to
            # this machine, and the egress guard keeps them from going further. No masquerade.
            {"type": "bridge", "bridge": hostnet.BRIDGE, "isGateway": False, "ipMasq": False,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(top / "cni" / "ipam"),
                      "ranges": [[{"subnet": hostnet.POD_CIDR, "gateway": hostnet.NODE_IP}]],
                      "routes": [{"dst": "0.0.0.0/0", "gw": hostnet.NODE_IP}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }


def kubelet_config(top: Path, ca: Path, serving: pki.KeyPair, port: int, healthz_port: int) -> dict[str, object]:
    k = top / "kubelet"
    return {
        "kind": "KubeletConfiguration",
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "containerRuntimeEndpoint": f"unix://{socket_dir(top) / 'containerd.sock'}",
        "cgroupDriver": "cgroupfs",  # no systemd on these VMs
        "cgroupRoot": f"/{CGROUP_ROOT}",
        "failCgroupV1": False,  # 1.35 refuses cgroup v1 otherwise; these VMs have v1 hierarchies
        "failSwapOn": False,
        # False: the kubelet then sets vm.overcommit_memory, kernel.panic, kernel.panic_on_oops itself;
        # hostnet.restore() puts them back. True would refuse to start on this VM's defaults.
        "protectKernelDefaults": False,
        "address": hostnet.NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDomain": "cluster.local",
        "clusterDNS": [hostnet.DNS_SERVICE_IP],
        # Pods with dnsPolicy Default get no upstream resolver: no name outside the cluster resolves.
        "resolvConf": str(top / "resolv.conf"),
        "podCIDR": hostnet.POD_CIDR,
        "podLogsDir": str(top / "pod-logs"),
        "volumePluginDir": str(k / "volume-plugins"),
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "registerNode": True,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(kubeconfig_path: Path, healthz_port: int, metrics_port: int) -> dict[str, object]:
    zero = "0s"
    return {
        "kind": "KubeProxyConfiguration",
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": hostnet.CLUSTER_CIDR,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "nodePortAddresses": [f"{hostnet.NODE_IP}/32"],
        # Zeros: kube-proxy changes no conntrack sysctl of this machine.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": zero, "tcpCloseWaitTimeout": zero,
                      "udpTimeout": zero, "udpStreamTimeout": zero},
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
    }


@dataclass
class Node:
    directory: Path
    assets: Path
    _procs: processes.Components = field(default_factory=processes.Components)

    @property
    def socket(self) -> Path:
        return socket_dir(self.directory) / "containerd.sock"

    def log_path(self, component: str) -> Path:
        return self.directory / "logs" / f"{component}.log"

    def pids(self) -> dict[str, int]:
        return self._procs.pids()

    @property
    def components(self) -> processes.Components:
        """containerd, kubelet, kube-proxy: each can be stopped and started again with the argv and env it
        was spawned with (a node restart). Stopping containerd leaves its shims, and so the containers, running."""
        return self._procs

    def containerd_answers(self) -> bool:
        return subprocess.run(["ctr", "--address", str(self.socket), "version"], capture_output=True,
                              check=False, timeout=10).returncode == 0

    def ctr(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["ctr", "--address", str(self.socket), "--namespace", K8S_NAMESPACE, *args],
                              capture_output=True, text=True, check=False, timeout=300)
        if check and proc.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def import_image(self, image: Image) -> str:
        """Load an OCI archive into the node's containerd under its reference and its digest
        (`ref@sha256:…`), so a pod naming the image either way finds it without a pull; returns the digest."""
        from devenv.images import archive_digest

        repo = image.ref.rsplit(":", 1)[0]
        # --base-name: the archive's reference is a full one; without it ctr also makes "import-<date>".
        self.ctr("images", "import", "--digests", "--base-name", repo, str(image.archive))
        digest = archive_digest(image.archive)
        names = self.ctr("images", "list", "--quiet").split()
        by_digest = f"{repo}@{digest}"
        if image.ref not in names:
            raise NodeError(f"{image.archive} did not import as {image.ref} (containerd has {names})")
        if by_digest not in names:
            self.ctr("images", "tag", image.ref, by_digest)
        return digest

    def stop(self) -> None:
        """Stop the kubelet and kube-proxy, remove every pod's containers and sandbox, stop containerd,
        unmount what the node mounted and remove its cgroups. Safe to call twice."""
        for name in ("kube-proxy", "kubelet"):
            if name in self._procs:
                self._procs.stop(name)
        if "containerd" in self._procs:
            self._remove_containers()
        self._procs.stop_all()
        self._kill_shims()
        _kill_cgroup_tree(CGROUP_ROOT)
        _unmount_under(self.directory)
        _unmount_under(socket_dir(self.directory))
        _remove_cgroups(CGROUP_ROOT)
        shutil.rmtree(socket_dir(self.directory), ignore_errors=True)

    def _remove_containers(self) -> None:
        """Every task killed and every container deleted, pause sandboxes too, through containerd."""
        try:
            tasks = self.ctr("tasks", "list", "--quiet", check=False).split()
            for t in tasks:
                self.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", t, check=False)
            deadline = time.monotonic() + 15
            for t in tasks:
                while time.monotonic() < deadline and \
                        self.ctr("tasks", "delete", "--force", t, check=False) == "" and \
                        t in self.ctr("tasks", "list", "--quiet", check=False).split():
                    time.sleep(0.2)
            for c in self.ctr("containers", "list", "--quiet", check=False).split():
                self.ctr("containers", "delete", c, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def _kill_shims(self) -> None:
        """containerd-shim processes outlive containerd by design; ours carry our socket's path."""
        marker = str(socket_dir(self.directory)).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and marker in cmdline:
                try:
                    os.kill(int(entry.name), 9)
                except OSError:
                    pass


def _unmount_under(top: Path) -> None:
    """Unmount everything mounted below `top` (overlay rootfs, tmpfs volumes, shm), deepest first."""
    prefix = str(top.resolve()) + "/"
    for _ in range(3):
        points = sorted({line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                         if line.split()[1].startswith(prefix)}, key=len, reverse=True)
        if not points:
            return
        for p in points:
            subprocess.run(["umount", "-l", p], capture_output=True, check=False)


def _kill_cgroup_tree(root: str) -> None:
    """SIGKILL every process in the kubelet's cgroups: a container outlives its shim when that is
    killed, so after a crash this is what finds them all."""
    base = Path("/sys/fs/cgroup")
    for _ in range(5):
        pids = set()
        for hierarchy in base.iterdir() if base.is_dir() else []:
            for procs in (hierarchy / root).rglob("cgroup.procs") if (hierarchy / root).is_dir() else []:
                try:
                    pids |= {int(p) for p in procs.read_text().split()}
                except OSError:
                    pass
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        time.sleep(0.2)


def _remove_cgroups(root: str) -> None:
    """rmdir the kubelet's cgroup tree in every hierarchy, leaves first (only empty cgroups go)."""
    base = Path("/sys/fs/cgroup")
    for hierarchy in base.iterdir() if base.is_dir() else []:
        tree = hierarchy / root
        if not tree.is_dir():
            continue
        for d in sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except OSError:
                pass
        try:
            tree.rmdir()
        except OSError:
            pass


def _make_cgroups(root: str) -> None:
    """The kubelet's cgroupRoot must exist in every v1 hierarchy; a new cpuset starts with no CPUs or
    memory nodes, so it gets its parent's."""
    base = Path("/sys/fs/cgroup")
    for hierarchy in base.iterdir():
        if not (hierarchy / "cgroup.procs").exists() or hierarchy.name == "unified":
            continue
        d = hierarchy / root
        d.mkdir(exist_ok=True)
        for f in ("cpuset.cpus", "cpuset.mems"):
            if (d / f).exists() and not (d / f).read_text().strip():
                (d / f).write_text((hierarchy / f).read_text())


def start(top: Path, assets: Path, server: str, ca: pki.KeyPair, images: list[Image], timeout: float = 90) -> Node:
    """containerd (with `images` imported), the kubelet and kube-proxy. The caller made the bridge
    (hostnet.up) and runs the control plane at `server`. Returns once containerd answers; the caller
    waits for the Node to be Ready through the API."""
    require_tools()
    node = Node(top, assets)
    logs, certs = top / "logs", top / "pki"
    for d in (logs, certs, top / "cni" / "net.d", top / "cni" / "ipam", top / "containerd", top / "kubelet",
              top / "pod-logs", socket_dir(top)):
        d.mkdir(parents=True, exist_ok=True)
    (top / "resolv.conf").write_text("# the dev node's pods resolve cluster names only (CoreDNS)\n")
    (top / "cni" / "net.d" / "10-schemagate.conflist").write_text(json.dumps(cni_conflist(top), indent=1))
    pause = next(i for i in images if "pause" in i.ref)
    (top / "containerd" / "config.toml").write_text(containerd_config(top, pause.ref))
    try:
        proc = node._procs.spawn(
            "containerd", ["containerd", "--config", str(top / "containerd" / "config.toml"), "--log-level", "warn"],
            log=logs / "containerd.log", ready=node.containerd_answers)
        deadline = time.monotonic() + timeout
        while not node.containerd_answers():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise NodeError(f"containerd did not start:\n{processes.tail(logs / 'containerd.log')}")
            time.sleep(0.1)
        for image in images:
            node.import_image(image)

        ca_pem = ca.cert.read_bytes()
        kubelet_client = pki.issue(ca, certs, "kubelet-client", f"/O=system:nodes/CN=system:node:{NODE_NAME}")
        kubelet_serving = pki.issue(ca, certs, "kubelet-serving", f"/CN={NODE_NAME}", server=True,
                                    sans=(f"IP:{hostnet.NODE_IP}", f"DNS:{NODE_NAME}"))
        proxy_client = pki.issue(ca, certs, "kube-proxy", "/CN=system:kube-proxy")
        kubelet_kc = kubeconfig.write(top / "kubelet.kubeconfig", kubeconfig.render(
            server, ca_pem, user=f"system:node:{NODE_NAME}", client_cert_pem=kubelet_client.cert.read_bytes(),
            client_key_pem=kubelet_client.key.read_bytes()))
        proxy_kc = kubeconfig.write(top / "kube-proxy.kubeconfig", kubeconfig.render(
            server, ca_pem, user="system:kube-proxy", client_cert_pem=proxy_client.cert.read_bytes(),
            client_key_pem=proxy_client.key.read_bytes()))
        kubelet_healthz = free_port()
        (top / "kubelet" / "config.json").write_text(json.dumps(kubelet_config(
            top, ca.cert, kubelet_serving, free_port(), kubelet_healthz), indent=1))
        _make_cgroups(CGROUP_ROOT)
        node._procs.spawn("kubelet", [
            str(assets / "kubelet"), f"--config={top / 'kubelet' / 'config.json'}",
            f"--kubeconfig={kubelet_kc}", f"--hostname-override={NODE_NAME}", f"--node-ip={hostnet.NODE_IP}",
            # Its root holds unix sockets (pod-resources, plugin registration): a short path too.
            f"--root-dir={socket_dir(top) / 'kubelet'}", f"--cert-dir={certs / 'kubelet'}", "--v=1",
        ], log=logs / "kubelet.log", ready=lambda: _healthz(kubelet_healthz))
        (top / "kube-proxy.json").write_text(json.dumps(kube_proxy_config(proxy_kc, free_port(), free_port())))
        node._procs.spawn("kube-proxy", [
            str(assets / "kube-proxy"), f"--config={top / 'kube-proxy.json'}", "--v=1",
        ], log=logs / "kube-proxy.log")
    except BaseException:
        node.stop()
        raise
    return node


def _healthz(port: int) -> bool:
    """The kubelet's healthz (plain HTTP on 127.0.0.1): 200 once it runs its sync loop."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
        return bool(resp.status == 200)


def cleanup_kube_proxy(assets: Path, log: Path) -> None:
    """kube-proxy's own teardown of the rules it wrote (as `kube-proxy --cleanup` on a real node)."""
    with open(log, "ab") as out:
        subprocess.run([str(assets / "kube-proxy"), "--cleanup", "--v=0"], stdout=out, stderr=out,
                       check=False, timeout=60)
