"""The kubelet's /containerLogs endpoint, so `kubectl logs` works against the local pod runner.

kube-apiserver proxies `pods/log` to https://<node InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>
/containerLogs/<namespace>/<pod>/<container>. With no --kubelet-certificate-authority it does not verify
the serving certificate, so a self-signed one does; requests are not authenticated because the server
listens on loopback only and serves nothing but logs.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

# (namespace, pod, container) -> (log file or None, still running?)
Locate = Callable[[str, str, str], "tuple[Path | None, bool]"]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "kubelet.crt", directory / "kubelet.key"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "3650",
                        "-subj", "/CN=schemagate-local-kubelet", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
    return cert, key


class LogServer:
    def __init__(self, directory: Path, locate: Locate):
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = _self_signed(directory)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        handler = type("Handler", (_Handler,), {"locate": staticmethod(locate)})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="kubelet-logs", daemon=True)

    def start(self) -> "LogServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    locate: Locate

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404, "only /containerLogs/<namespace>/<pod>/<container> is served")
            return
        query = urllib.parse.parse_qs(url.query)
        path, running = self.locate(parts[1], parts[2], parts[3])
        if path is None or not path.exists():
            self.send_error(404, f"no logs for container {parts[3]} of pod {parts[1]}/{parts[2]}")
            return
        follow = query.get("follow", ["false"])[0] == "true"
        tail = int(query["tailLines"][0]) if "tailLines" in query else None
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        data = path.read_bytes()
        if tail is not None:
            data = b"".join(data.splitlines(keepends=True)[-tail:]) if tail > 0 else b""
        self.wfile.write(data)
        offset = path.stat().st_size
        while follow and running:
            time.sleep(0.3)
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            if chunk:
                self.wfile.write(chunk)
                self.wfile.flush()
                offset += len(chunk)
            _, running = self.locate(parts[1], parts[2], parts[3])
