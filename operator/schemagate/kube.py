"""Kubernetes client configuration: KUBECONFIG if set, else the pod's service account when running in a
pod, else ~/.kube/config."""

from __future__ import annotations

import os
import threading

from kubernetes import client, config

_lock = threading.Lock()
_loaded = False


def load() -> None:
    """Load the client configuration once per process."""
    global _loaded
    with _lock:
        if not _loaded:
            # The client reads KUBECONFIG once, at import; read it now so a later setting counts.
            path = os.environ.get("KUBECONFIG")
            if path:
                config.load_kube_config(config_file=path)
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                # Not config.load_config(): it prints its guess on stdout, into `migrate --json`'s output.
                config.load_incluster_config()
            else:
                config.load_kube_config()
            _loaded = True


def api_client() -> client.ApiClient:
    load()
    return client.ApiClient()
