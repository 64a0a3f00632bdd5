"""toxiproxy (hack/build-toxiproxy.sh builds it from the Go module proxy), driven over its HTTP API: the
bench's latency in front of PostgreSQL (bench/latency.py) and the fault suite's network cut between a
migration Job and its database (tests/faults). One server per `running_server`, proxies made on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TOXIPROXY_VERSION = "v2.12.0"


class ProxyUnavailable(RuntimeError):
    """toxiproxy is missing or did not start; the message says how to get it."""


def default_binary() -> str:
    cache = Path(os.environ.get("SCHEMAGATE_CACHE", Path.home() / ".cache" / "schemagate"))
    return os.environ.get("TOXIPROXY_BIN") or str(cache / f"toxiproxy-{TOXIPROXY_VERSION}" / "toxiproxy-server")


def call(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
    except urllib.error.HTTPError as e:
        if method == "DELETE" and e.code == 404:
            raise
        raise ProxyUnavailable(f"toxiproxy {method} {path}: {e.code} {e.read().decode(errors='replace')}") from None
    result: dict[str, Any] = json.loads(text) if text.strip() else {}
    return result


class Proxy:
    """One proxy of a toxiproxy server: `host:port` forwards to its upstream."""

    def __init__(self, api: str, name: str, host: str, port: int):
        self.api, self.name, self.host, self.port = api, name, host, port

    def add_toxic(self, name: str, kind: str, stream: str, **attributes: Any) -> None:
        call(self.api, "POST", f"/proxies/{self.name}/toxics",
             {"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes})

    def remove_toxic(self, name: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError):  # absent
            call(self.api, "DELETE", f"/proxies/{self.name}/toxics/{name}")

    def set_enabled(self, enabled: bool) -> None:
        """Disabled: every connection through it is closed and new ones are refused."""
        call(self.api, "POST", f"/proxies/{self.name}", {"enabled": enabled})

    def set_latency(self, ms: int) -> None:
        """`ms` of delay on every chunk, each way (a round trip costs 2*ms more); 0 removes the toxics."""
        for stream in ("upstream", "downstream"):
            self.remove_toxic(f"latency_{stream}")
            if ms > 0:
                self.add_toxic(f"latency_{stream}", "latency", stream, latency=ms, jitter=0)


class Server:
    def __init__(self, api: str):
        self.api = api

    def proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0") -> Proxy:
        """A proxy listening on `listen` (port 0: any free one) to `upstream` (host:port)."""
        made = call(self.api, "POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream,
                                                   "enabled": True})
        host, _, port = made["listen"].rpartition(":")
        return Proxy(self.api, name, host.strip("[]"), int(port))

    def delete(self, name: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError):
            call(self.api, "DELETE", f"/proxies/{name}")


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(binary: str | None = None, host: str = "127.0.0.1") -> Iterator[Server]:
    """A toxiproxy server whose API listens on `host`; stopped on exit."""
    binary = binary or default_binary()
    if not os.access(binary, os.X_OK):
        raise ProxyUnavailable(f"toxiproxy: {binary} is not an executable; run hack/build-toxiproxy.sh "
                               "(or set TOXIPROXY_BIN)")
    api_port = _free_port(host)
    api = f"http://{host}:{api_port}"
    # A file, not a pipe: toxiproxy logs every connection, and a full pipe would stall it.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([binary, "-host", host, "-port", str(api_port)], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                call(api, "GET", "/version")
                break
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    err = log.read().decode(errors="replace")[-2000:]
                    raise ProxyUnavailable(f"toxiproxy did not start on {host}:{api_port}: {err}") from None
                time.sleep(0.05)
        yield Server(api)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
