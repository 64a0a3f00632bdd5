"""A toxiproxy between every tool and PostgreSQL, so goose, psql and schemagate pay the same network delay.

Loopback hides round trips (~0.1 ms each); the users' database is a hop away (1-2 ms). toxiproxy's
latency toxic on both directions adds the delay to every answer, whoever sends the question.
toxiproxy is built by hack/build-toxiproxy.sh (Go module proxy), driven over its HTTP API on 127.0.0.1
(devenv/toxiproxy.py, which the fault suite uses too).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devenv/, when loaded by path
from devenv import toxiproxy  # noqa: E402
from devenv.toxiproxy import TOXIPROXY_VERSION, Proxy, ProxyUnavailable  # noqa: E402

__all__ = ["TOXIPROXY_VERSION", "Proxy", "ProxyUnavailable", "default_toxiproxy", "running_proxy"]


def default_toxiproxy() -> str:
    return toxiproxy.default_binary()


@contextlib.contextmanager
def running_proxy(binary: str, upstream_port: int) -> Iterator[Proxy]:
    """A toxiproxy server on 127.0.0.1 with one proxy to 127.0.0.1:upstream_port; stopped on exit."""
    with toxiproxy.running_server(binary) as server:
        yield server.proxy("postgres", f"127.0.0.1:{upstream_port}")
