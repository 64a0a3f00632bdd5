"""A container's environment as the kubelet computes it, and the $(VAR) expansion of command/args.

Pure: Secrets and ConfigMaps come in through lookup callables, so the rules are testable without an
API server. A missing non-optional reference raises ContainerConfigError, which the pod runner
reports as the kubelet does (container Waiting, reason CreateContainerConfigError).
"""

from __future__ import annotations

import base64
import re
from typing import Any, Callable, Mapping

# (namespace, name) -> the object as a dict, or None when it does not exist.
Lookup = Callable[[str, str], "dict[str, Any] | None"]


class ContainerConfigError(Exception):
    """The container cannot start until a referenced Secret/ConfigMap (key) exists."""


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (secret.get("data") or {}).items()}


def _configmap_data(cm: dict[str, Any]) -> dict[str, str]:
    return dict(cm.get("data") or {})


_FIELD_LABEL = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: dict[str, Any], path: str) -> str:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP", "127.0.0.1"), "status.hostIP": status.get("hostIP", "127.0.0.1"),
    }
    if path in simple:
        return simple[path] or ""
    if m := _FIELD_LABEL.match(path):
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ContainerConfigError(f"fieldRef {path!r} is not supported by the local pod runner")


def _ref(kind: str, ns: str, ref: dict[str, Any], lookup: Lookup, decode: Callable[[dict[str, Any]], dict[str, str]]
         ) -> str | None:
    name, key, optional = ref.get("name", ""), ref["key"], bool(ref.get("optional"))
    obj = lookup(ns, name)
    if obj is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind} "{name}" not found')
    data = decode(obj)
    if key not in data:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {ns}/{name}")
    return data[key]


def resolve_env(pod: dict[str, Any], container: dict[str, Any], *, secrets: Lookup, configmaps: Lookup
                ) -> dict[str, str]:
    """envFrom first, then env (later entries win), with $(VAR) expanded against what came before."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key, lookup, decode in (("secret", "secretRef", secrets, _secret_data),
                                          ("configmap", "configMapRef", configmaps, _configmap_data)):
            if key not in source:
                continue
            ref = source[key]
            obj = lookup(ns, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind} "{ref.get("name")}" not found')
            for k, v in decode(obj).items():
                env[prefix + k] = v
    for var in container.get("env") or []:
        name, source = var["name"], var.get("valueFrom")
        if source is None:
            env[name] = expand(var.get("value", ""), env)
            continue
        value: str | None
        if "secretKeyRef" in source:
            value = _ref("secret", ns, source["secretKeyRef"], secrets, _secret_data)
        elif "configMapKeyRef" in source:
            value = _ref("configmap", ns, source["configMapKeyRef"], configmaps, _configmap_data)
        elif "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"])
        else:
            raise ContainerConfigError(f"env {name}: {sorted(source)} is not supported by the local pod runner")
        if value is not None:
            env[name] = value
    return env


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) syntax: defined variables are replaced, $$ escapes, the rest stays literal."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)
