"""Kubernetes client configuration: KUBECONFIG if set, else the pod's service account when running in a
pod, else ~/.kube/config."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

_lock = threading.Lock()
_loaded = False


def load() -> None:
    """Load the client configuration once per process."""
    global _loaded
    with _lock:
        if not _loaded:
            # The client reads KUBECONFIG once, at import; read it now so a later setting counts.
            path = os.environ.get("KUBECONFIG")
            # The config loaders are the client's untyped corner.
            if path:
                config.load_kube_config(config_file=path)  # type: ignore[no-untyped-call]
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                # Not config.load_config(): it prints its guess on stdout, into `migrate --json`'s output.
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            else:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            _loaded = True


def api_client(*, retries: int | None = None) -> client.ApiClient:
    """A client on the loaded configuration; `retries` replaces urllib3's own retries inside each call (0: a
    caller that retries itself and bounds each call by a timeout, which retries would multiply)."""
    load()
    if retries is None:
        return client.ApiClient()
    configuration = client.Configuration.get_default_copy()
    configuration.retries = retries
    return client.ApiClient(configuration)


class Clients:
    """The API groups the operator talks to, over one ApiClient (one connection pool)."""

    def __init__(self, api_client: client.ApiClient):
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)


def unless_absent(read: Callable[[], T]) -> T | None:
    """What `read()` returns, or None when the apiserver answers 404 (the object is not there); any other
    error raises."""
    try:
        return read()
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def read_json(read: Callable[..., Any], name: str, namespace: str, **options: Any) -> dict[str, Any] | None:
    """`read(name, namespace)` of a typed API (a read_namespaced_* method) as the apiserver's own JSON rather
    than the client's models (exact strings such as a Lease's MicroTime, no conversion of a large object);
    None when absent."""
    resp = unless_absent(lambda: read(name, namespace, _preload_content=False, **options))
    if resp is None:
        return None
    doc: dict[str, Any] = json.loads(resp.data)
    return doc
