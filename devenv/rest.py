"""A minimal JSON client for the Kubernetes API, for the dev harness only.

The pod runner handles objects as plain dicts (what the API sends) and needs exact control over patch
types and watches; the generated client's models would add conversions and deserialisation quirks
(Binding responses, say) without helping.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import yaml

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str):
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


class Rest:
    def __init__(self, server: str, context: ssl.SSLContext, token: str | None = None):
        self.server = server.rstrip("/")
        self._ctx = context
        self._token = token

    @classmethod
    def from_kubeconfig(cls, path: Path) -> "Rest":
        """Current context of a kubeconfig with embedded CA and client cert/key or token."""
        cfg = yaml.safe_load(Path(path).read_text())
        ctx_name = cfg["current-context"]
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        sslctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        if "client-certificate-data" in user:
            # load_cert_chain wants files; a private temp dir, removed right away.
            with tempfile.TemporaryDirectory() as d:
                cert, key = Path(d) / "c", Path(d) / "k"
                cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
                key.write_bytes(base64.b64decode(user["client-key-data"]))
                sslctx.load_cert_chain(str(cert), str(key))
        return cls(cluster["server"], sslctx, user.get("token"))

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                query: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        url = self.server + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, method, path, exc.read().decode(errors="replace")) from None
        return json.loads(raw) if raw else None

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)

    def get_or_none(self, path: str) -> Any:
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def watch(self, path: str, resource_version: str, timeout_seconds: int = 10) -> Iterator[dict[str, Any]]:
        """Events of one watch request; ends when the server closes it after timeout_seconds."""
        query = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_seconds),
                 "allowWatchBookmarks": "true"}
        url = f"{self.server}{path}?{urllib.parse.urlencode(query)}"
        req = urllib.request.Request(url)
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        try:
            resp = urllib.request.urlopen(req, context=self._ctx, timeout=timeout_seconds + 15)
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, "WATCH", path, exc.read().decode(errors="replace")) from None
        with resp:
            for line in resp:
                if line.strip():
                    yield json.loads(line)
