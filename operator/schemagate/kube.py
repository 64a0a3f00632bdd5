"""Kubernetes client configuration: KUBECONFIG (or ~/.kube/config) first, then the in-cluster account."""

from __future__ import annotations

import threading

from kubernetes import client, config

_lock = threading.Lock()
_loaded = False


def load() -> None:
    """Load the client configuration once per process."""
    global _loaded
    with _lock:
        if not _loaded:
            config.load_config()
            _loaded = True


def api_client() -> client.ApiClient:
    load()
    return client.ApiClient()
