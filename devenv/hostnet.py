"""The node's network on this machine, and putting the machine back as it was.

No `dummy` interface exists on these VMs, so the CNI bridge is made here before anything starts and its
address is the node's: the apiserver advertises it, the kubelet serves on it, PostgreSQL listens on it.
Traffic stays on the machine: forwarding is switched on for the bridge alone (the global ip_forward is
left as it is), nothing is masqueraded, and an egress guard drops whatever a pod sends to any other
interface.

`snapshot()` records what the cluster's parts may change (links, iptables, mounts, network namespaces,
the sysctls the kubelet and kube-proxy write) so `restore()` can put it back and a test can compare.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "sgbr0"
NODE_IP = "10.244.0.1"
POD_CIDR = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/24"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"

# The egress guard: a pod's packet may go to another pod on the bridge, or to this machine (INPUT), never
# on. It sits in mangle's FORWARD, which the kernel runs before filter's: kube-proxy inserts its own
# rules at the head of filter FORWARD, and one of them accepts any packet it marked for masquerade
# (a Service whose endpoint is an outside address would otherwise lead out).
GUARD = ["-t", "mangle", "FORWARD", "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP",
         "-m", "comment", "--comment", "schemagate egress guard"]

# What the kubelet (protectKernelDefaults: false) and kube-proxy write machine-wide.
TOUCHED_SYSCTLS = (
    "vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops", "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes", "net.ipv4.conf.all.route_localnet", "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_tcp_be_liberal",
)
# Chains the cluster's parts create in iptables: kube-proxy's, the kubelet's canaries, CNI portmap's.
CHAIN_PREFIXES = ("KUBE-", "CNI-")


_COUNTERS = re.compile(r" \[\d+:\d+\]$")


class HostNetError(RuntimeError):
    """A host network command failed; carries its stderr."""


def _sh(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise HostNetError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def read_sysctl(key: str) -> str | None:
    path = Path("/proc/sys") / key.replace(".", "/")
    try:
        return path.read_text().strip()
    except OSError:
        return None


def write_sysctl(key: str, value: str) -> None:
    (Path("/proc/sys") / key.replace(".", "/")).write_text(value)


def netns_names() -> list[str]:
    d = Path("/var/run/netns")
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def links() -> list[str]:
    """Interface names and flags, as `ip -br link` shows them (addresses of veths change; names suffice)."""
    out = _sh("ip", "-br", "link")
    return sorted(" ".join(line.split()[:1] + line.split()[2:3]) for line in out.splitlines() if line.strip())


def iptables_rules() -> list[str]:
    """Every table's chains and rules as iptables-save prints them, without counters or comments."""
    rows = []
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool) is None:
            continue
        for line in _sh(tool).splitlines():
            if not line or line.startswith("#"):
                continue
            rows.append(f"{tool}: {_COUNTERS.sub('', line)}")
    return rows


def mounts() -> list[str]:
    return sorted(line.split()[1] + " " + line.split()[2] for line in Path("/proc/mounts").read_text().splitlines())


@dataclass(frozen=True)
class Snapshot:
    links: list[str]
    iptables: list[str]
    mounts: list[str]
    netns: list[str]
    sysctls: dict[str, str | None]

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Snapshot":
        return cls(**json.loads(text))

    def differences(self, other: "Snapshot") -> dict[str, dict[str, list[str]]]:
        """What `other` has that this lacks ('added') and the reverse ('removed'), per aspect."""
        out: dict[str, dict[str, list[str]]] = {}
        for aspect in ("links", "iptables", "mounts", "netns"):
            mine, theirs = set(getattr(self, aspect)), set(getattr(other, aspect))
            if mine != theirs:
                out[aspect] = {"added": sorted(theirs - mine), "removed": sorted(mine - theirs)}
        changed = [f"{k}: {self.sysctls.get(k)} -> {other.sysctls.get(k)}"
                   for k in sorted(set(self.sysctls) | set(other.sysctls)) if self.sysctls.get(k) != other.sysctls.get(k)]
        if changed:
            out["sysctls"] = {"added": changed, "removed": []}
        return out


def snapshot() -> Snapshot:
    return Snapshot(links(), iptables_rules(), mounts(), netns_names(),
                    {k: read_sysctl(k) for k in TOUCHED_SYSCTLS})


def refuse_if_taken() -> None:
    """Before anything is changed: one cluster per machine (kube-proxy's chains are global)."""
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        raise HostNetError(f"bridge {BRIDGE} already exists: another schemagate cluster runs on this machine "
                           "(hack/cluster down stops it)")


def up() -> None:
    """The bridge with the node's address, forwarding on it alone, and the egress guard (the caller has
    checked refuse_if_taken and recorded a snapshot to restore)."""
    _sh("ip", "link", "add", BRIDGE, "type", "bridge")
    _sh("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    _sh("ip", "link", "set", BRIDGE, "up")
    write_sysctl(f"net.ipv4.conf.{BRIDGE}.forwarding", "1")
    _sh("iptables", *GUARD[:2], "-I", GUARD[2], "1", *GUARD[3:])


def _chains(tool: str, table: str) -> list[str]:
    out = _sh(tool, "-t", table, "-S", check=False)
    return [line.split()[1] for line in out.splitlines() if line.startswith("-N ")]


def _remove_cluster_chains() -> None:
    """Rules jumping to, and then the chains named, KUBE-*/CNI-* that were not there before `up`."""
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle"):
            ours = [c for c in _chains(tool, table) if c.startswith(CHAIN_PREFIXES)]
            if not ours:
                continue
            for line in _sh(tool, "-t", table, "-S", check=False).splitlines():
                parts = line.split()
                if parts[:1] == ["-A"] and "-j" in parts and parts[parts.index("-j") + 1] in ours \
                        and not parts[1].startswith(CHAIN_PREFIXES):
                    _sh(tool, "-t", table, "-D", *parts[1:], check=False)
            for chain in ours:
                _sh(tool, "-t", table, "-F", chain, check=False)
            for chain in ours:
                _sh(tool, "-t", table, "-X", chain, check=False)


def _remove_new_tables(before: Snapshot) -> None:
    """iptables-nft creates a table on first use and never removes it; drop those `before` lacked
    (their rules are gone by now), so iptables-save prints what it printed before `up`."""
    if shutil.which("nft") is None:
        return
    families = {"iptables-save": "ip", "ip6tables-save": "ip6"}
    for line in set(iptables_rules()) - set(before.iptables):
        tool, _, rest = line.partition(": ")
        if rest.startswith("*") and tool in families:
            _sh("nft", "delete", "table", families[tool], rest[1:], check=False)


def restore(before: Snapshot) -> None:
    """Undo `up` and whatever the cluster's parts changed since `before`. Safe to call twice."""
    while subprocess.run(["iptables", *GUARD[:2], "-C", *GUARD[2:]], capture_output=True,
                         check=False).returncode == 0:
        _sh("iptables", *GUARD[:2], "-D", *GUARD[2:])
    _remove_cluster_chains()
    _remove_new_tables(before)
    for name in set(netns_names()) - set(before.netns):
        # Lazily: a sandbox's last process may still be exiting; the mount goes with it.
        _sh("umount", "-l", f"/var/run/netns/{name}", check=False)
        for _ in range(50):
            try:
                Path(f"/var/run/netns/{name}").unlink(missing_ok=True)
                break
            except OSError:
                time.sleep(0.1)
    # Veths die with their namespaces; the bridge is ours.
    _sh("ip", "link", "delete", BRIDGE, check=False)
    for key, value in before.sysctls.items():
        if value is not None and read_sysctl(key) != value:
            write_sysctl(key, value)
