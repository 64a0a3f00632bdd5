#!/usr/bin/env bash
# Installs from Debian's packages what the dev cluster's node needs and this machine may lack:
# containerd, runc and the CNI plugins (the container runtime), buildah and debootstrap (images are built
# here, never pulled), gcc (the static pause program), iptables and nftables (kube-proxy, the egress guard
# and its removal), conntrack (kube-proxy clears UDP entries with it). Nothing here starts a service.
set -euo pipefail
PACKAGES=(containerd runc containernetworking-plugins buildah debootstrap gcc libc6-dev iptables nftables conntrack
          iproute2 openssl)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing from Debian packages: ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's containerd package starts the machine's own containerd; the node runs its own instead.
$SUDO systemctl disable --now containerd >/dev/null 2>&1 || $SUDO service containerd stop >/dev/null 2>&1 || true
