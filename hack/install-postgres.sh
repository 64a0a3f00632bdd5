#!/usr/bin/env bash
# Installs PostgreSQL's server and client from Debian's packages when they are missing.
# The tests start their own throw-away cluster; nothing here starts a service.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v psql >/dev/null && command -v pg_dump >/dev/null; then
  exit 0
fi
echo "installing PostgreSQL from Debian packages" >&2
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
# Debian's package starts a system cluster; our tests never use it.
$SUDO systemctl disable --now postgresql >/dev/null 2>&1 || $SUDO service postgresql stop >/dev/null 2>&1 || true
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
