"""Materialising a pod's volumes in a host directory, as the kubelet's volume plugins would.

ConfigMap and Secret (with `items`, `defaultMode`, `optional`), emptyDir, downwardAPI, and projected
(serviceAccountToken, configMap, secret, downwardAPI sources). A persistentVolumeClaim is a directory
per namespace and claim name under `claims`, shared by every pod using the claim and kept after they end
(no binding, no capacity, no access modes). Any other type (hostPath, ...) becomes an empty directory.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Callable

from devenv.podenv import ContainerConfigError, Lookup, field_value

# (audience or None, expirationSeconds) -> token
TokenSource = Callable[[str | None, int], str]


class VolumeNotReady(Exception):
    """A referenced ConfigMap/Secret is missing; the kubelet keeps the pod in ContainerCreating."""


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def _keyed(target: Path, kind: str, ns: str, ref: dict[str, Any], lookup: Lookup, default_mode: int) -> None:
    name = ref.get("name") or ref.get("secretName") or ""
    obj = lookup(ns, name)
    if obj is None:
        if ref.get("optional"):
            return
        raise VolumeNotReady(f'{kind} "{name}" not found')
    if kind == "secret":
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    else:
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    items = ref.get("items")
    if items is None:
        items = [{"key": k, "path": k} for k in data]
    for item in items:
        if item["key"] not in data:
            if ref.get("optional"):
                continue
            raise VolumeNotReady(f"configmap/secret {ns}/{name} has no key {item['key']!r}")
        _write(target / item["path"], data[item["key"]], item.get("mode", default_mode))


def _downward(target: Path, pod: dict[str, Any], items: list[dict[str, Any]], default_mode: int) -> None:
    for item in items:
        if "fieldRef" not in item:
            raise ContainerConfigError("downwardAPI resourceFieldRef is not supported by the local pod runner")
        value = field_value(pod, item["fieldRef"]["fieldPath"])
        _write(target / item["path"], value.encode(), item.get("mode", default_mode))


def claim_dir(claims: Path, namespace: str, claim_name: str) -> Path:
    return claims / namespace / claim_name


def materialise(pod: dict[str, Any], root: Path, *, secrets: Lookup, configmaps: Lookup,
                token: TokenSource, claims: Path | None = None) -> dict[str, Path]:
    """Write every volume of `pod` under root/<volume name>; returns volume name -> host directory."""
    ns = pod["metadata"]["namespace"]
    out: dict[str, Path] = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        target = root / vol["name"]
        if "persistentVolumeClaim" in vol and claims is not None:
            target = claim_dir(claims, ns, vol["persistentVolumeClaim"]["claimName"])
        target.mkdir(parents=True, exist_ok=True)
        out[vol["name"]] = target
        if "configMap" in vol:
            src = vol["configMap"]
            _keyed(target, "configmap", ns, src, configmaps, src.get("defaultMode", 0o644))
        elif "secret" in vol:
            src = vol["secret"]
            _keyed(target, "secret", ns, src, secrets, src.get("defaultMode", 0o644))
        elif "downwardAPI" in vol:
            src = vol["downwardAPI"]
            _downward(target, pod, src.get("items") or [], src.get("defaultMode", 0o644))
        elif "projected" in vol:
            mode = vol["projected"].get("defaultMode", 0o644)
            for s in vol["projected"].get("sources") or []:
                if "serviceAccountToken" in s:
                    t = s["serviceAccountToken"]
                    data = token(t.get("audience"), int(t.get("expirationSeconds", 3607))).encode()
                    _write(target / t["path"], data, mode)
                elif "configMap" in s:
                    _keyed(target, "configmap", ns, s["configMap"], configmaps, mode)
                elif "secret" in s:
                    _keyed(target, "secret", ns, s["secret"], secrets, mode)
                elif "downwardAPI" in s:
                    _downward(target, pod, s["downwardAPI"].get("items") or [], mode)
        # emptyDir and anything else: the empty directory made above.
    return out


def mount_map(container: dict[str, Any], volumes: dict[str, Path]) -> dict[str, str]:
    """mountPath -> host path for one container (subPath honoured)."""
    out: dict[str, str] = {}
    for m in container.get("volumeMounts") or []:
        host = volumes.get(m["name"])
        if host is None:
            raise ContainerConfigError(f"volumeMount {m['name']!r} refers to no volume of the pod")
        sub = m.get("subPath")
        if sub:
            host = host / sub
            if not host.exists():
                host.mkdir(parents=True)
        out[m["mountPath"]] = os.fspath(host)
    return out
