"""A toxiproxy between every tool and PostgreSQL, so goose, psql and schemagate pay the same network delay.

Loopback hides round trips (~0.1 ms each); the users' database is a hop away (1-2 ms). toxiproxy's
latency toxic on both directions adds the delay to every answer, whoever sends the question.
toxiproxy is built by hack/build-toxiproxy.sh (Go module proxy), driven over its HTTP API on 127.0.0.1.
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

TOXIPROXY_VERSION = "v2.12.0"


class ProxyUnavailable(RuntimeError):
    """toxiproxy is missing or did not start; the message says how to get it."""


def default_toxiproxy() -> str:
    cache = Path(os.environ.get("SCHEMAGATE_CACHE", Path.home() / ".cache" / "schemagate"))
    return os.environ.get("TOXIPROXY_BIN") or str(cache / f"toxiproxy-{TOXIPROXY_VERSION}" / "toxiproxy-server")


class Proxy:
    def __init__(self, api: str, name: str, port: int):
        self.api, self.name, self.port = api, name, port

    def set_latency(self, ms: int) -> None:
        """`ms` of delay on every chunk, each way (a round trip costs 2*ms more); 0 removes the toxics."""
        for stream in ("upstream", "downstream"):
            with contextlib.suppress(urllib.error.HTTPError):  # absent the first time
                _call(self.api, "DELETE", f"/proxies/{self.name}/toxics/latency_{stream}")
            if ms > 0:
                _call(self.api, "POST", f"/proxies/{self.name}/toxics",
                      {"name": f"latency_{stream}", "type": "latency", "stream": stream, "toxicity": 1.0,
                       "attributes": {"latency": ms, "jitter": 0}})


def _call(api: str, method: str, path: str, body: dict | None = None) -> dict:
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
    return json.loads(text) if text.strip() else {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_proxy(binary: str, upstream_port: int) -> Iterator[Proxy]:
    """A toxiproxy server on 127.0.0.1 with one proxy to 127.0.0.1:upstream_port; stopped on exit."""
    if not os.access(binary, os.X_OK):
        raise ProxyUnavailable(f"toxiproxy: {binary} is not an executable; run hack/build-toxiproxy.sh "
                               "(or set TOXIPROXY_BIN)")
    api_port = _free_port()
    api = f"http://127.0.0.1:{api_port}"
    # A file, not a pipe: toxiproxy logs every connection, and a full pipe would stall it mid-benchmark.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([binary, "-host", "127.0.0.1", "-port", str(api_port)], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _call(api, "GET", "/version")
                break
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    err = log.read().decode(errors="replace")[-2000:]
                    raise ProxyUnavailable(f"toxiproxy did not start on 127.0.0.1:{api_port}: {err}") from None
                time.sleep(0.05)
        made = _call(api, "POST", "/proxies", {"name": "postgres", "listen": "127.0.0.1:0",
                                               "upstream": f"127.0.0.1:{upstream_port}", "enabled": True})
        yield Proxy(api, "postgres", int(made["listen"].rsplit(":", 1)[1]))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
