#!/usr/bin/env bash
# Installs what the compose example's test needs, from Debian's packages, when it is missing: podman
# (its Docker-compatible API socket) and docker-compose. Debian 12's podman-compose (1.0.3) ignores
# `depends_on: condition:`, which the example is about; docker-compose 1.29 honours
# service_completed_successfully and talks to podman's socket. Nothing here starts a service.
set -euo pipefail
if command -v podman >/dev/null && command -v docker-compose >/dev/null && [ -x /usr/lib/podman/netavark ] && [ -x /usr/lib/podman/aardvark-dns ]; then
  exit 0
fi
echo "installing podman and docker-compose from Debian packages" >&2
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: docker-compose recommends docker.io (a second daemon) and needrestart.
$SUDO apt-get install -y -qq --no-install-recommends podman netavark aardvark-dns docker-compose >/dev/null
command -v podman >/dev/null && command -v docker-compose >/dev/null
