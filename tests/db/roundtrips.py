"""A loopback TCP relay that counts round trips: how often the server answers after the client spoke.

Over a network every round trip costs the latency twice, so "how many round trips per migration" is the
behaviour users feel; counting them here keeps the figure honest without timing anything.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
from collections.abc import Iterator


class RoundTripCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = "server"
        self.round_trips = 0

    def saw(self, direction: str) -> None:
        with self._lock:
            if direction == "server" and self._last == "client":
                self.round_trips += 1
            self._last = direction


def _pump(src: socket.socket, dst: socket.socket, direction: str, counter: RoundTripCounter) -> None:
    try:
        while data := src.recv(65536):
            counter.saw(direction)  # before forwarding: the answer cannot overtake its question
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def counting_relay(url: str) -> Iterator[tuple[str, RoundTripCounter]]:
    """(url through the relay, counter) for a postgresql:// URL on TCP; every connection is counted."""
    parts = urllib.parse.urlsplit(url)
    upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    counter = RoundTripCounter()
    sockets: list[socket.socket] = [listener]

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(upstream)
            sockets.extend([client, server])
            threading.Thread(target=_pump, args=(client, server, "client", counter), daemon=True).start()
            threading.Thread(target=_pump, args=(server, client, "server", counter), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    try:
        yield urllib.parse.urlunsplit(parts._replace(netloc=netloc)), counter
    finally:
        for s in sockets:
            with contextlib.suppress(OSError):
                s.close()
