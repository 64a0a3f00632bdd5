"""Rendering self-contained kubeconfig files (credentials embedded, so a copied file keeps working)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def render(server: str, ca_pem: bytes, *, user: str, client_cert_pem: bytes | None = None,
           client_key_pem: bytes | None = None, token: str | None = None, namespace: str | None = None,
           cluster: str = "schemagate-dev") -> dict[str, Any]:
    """A kubeconfig with one cluster/user/context; exactly one of client cert+key or token."""
    if (token is None) == (client_cert_pem is None):
        raise ValueError("kubeconfig for user %r needs either a token or a client certificate" % user)
    creds: dict[str, str] = {}
    if token is not None:
        creds["token"] = token
    else:
        assert client_key_pem is not None
        creds["client-certificate-data"] = _b64(client_cert_pem or b"")
        creds["client-key-data"] = _b64(client_key_pem)
    context: dict[str, str] = {"cluster": cluster, "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": cluster, "context": context}],
        "current-context": cluster,
        "preferences": {},
    }


def write(path: Path, config: dict[str, Any]) -> Path:
    """Write with mode 0600 from the start: the file holds credentials."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return path
