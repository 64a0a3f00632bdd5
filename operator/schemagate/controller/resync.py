"""Which SchemaMigrations the periodic resync must reconcile, so that an idle operator's cost follows
change, not the number of objects.

Watch events (the SchemaMigration, its Jobs, the database Leases, gated pods) always reconcile. The resync
exists for what is not watched: ConfigMap and Secret edits, and the database itself. A SchemaMigration at
rest — Ready at its target for its current generation, no Job running, no pod held — whose listed
resourceVersion and ConfigMaps' resourceVersions are those of its last reconcile has nothing new to find
except in its Secret or database; those are read again every `full_seconds` (a safety net). So a settled
object costs one metadata read per mutable ConfigMap per resync (none for an immutable one, as the Helm
chart packs them) instead of a Secret, Lease, Job list, ConfigMap and database session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schemagate import kube
from schemagate.controller.loop import Key


@dataclass(frozen=True)
class ConfigMapVersion:
    name: str
    uid: str | None  # None: missing
    resource_version: str | None
    immutable: bool = False


def settled(item: Mapping[str, Any]) -> bool:
    """Pure: the listed SchemaMigration is at rest, so only an unwatched input can give it work."""
    meta, status = item.get("metadata") or {}, item.get("status") or {}
    if meta.get("deletionTimestamp"):
        return False
    generation = meta.get("generation")
    ready: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    gate = status.get("rolloutGate") or {}
    return (ready.get("status") == "True" and status.get("observedGeneration") == generation
            and ready.get("observedGeneration") == generation and not status.get("currentJob")
            and not gate.get("waiting") and status.get("currentVersion") == status.get("targetVersion"))


def config_maps(item: Mapping[str, Any]) -> tuple[str, ...]:
    """The ConfigMaps the listed SchemaMigration's spec names, in order."""
    names = (((item.get("spec") or {}).get("source") or {}).get("configMaps")) or []
    return tuple(str(n) for n in names) if isinstance(names, list) else ()


@dataclass(frozen=True)
class Fingerprint:
    resource_version: str
    config_maps: tuple[ConfigMapVersion, ...]


@dataclass(frozen=True)
class Reconciled:
    fingerprint: Fingerprint
    full_at: float  # when the last reconcile of it started (monotonic): each reads the database


class Resyncs:
    """Per object, the fingerprint of its last reconcile from a resync. Each object's entry is touched only
    by that object's runs, which the controller never overlaps."""

    def __init__(self, full_seconds: float, clock: Callable[[], float]):
        self.full_seconds = full_seconds
        self._clock = clock
        self._seen: dict[Key, Reconciled] = {}

    def fingerprint(self, key: Key, item: Mapping[str, Any],
                    read: Callable[[str, str, bool], ConfigMapVersion]) -> Fingerprint:
        """The listed object's version and its ConfigMaps'. A ConfigMap seen for the first time is read whole
        (only the whole object says whether it is immutable); an immutable one is not read again (its content
        cannot change, only its deletion, which gives a settled object no work); a mutable one is read as
        metadata only (`read(namespace, name, metadata_only)`)."""
        seen = self._seen.get(key)
        known = {v.name: v for v in (seen.fingerprint.config_maps if seen else ())}
        versions = []
        for name in config_maps(item):
            before = known.get(name)
            if before is not None and before.immutable:
                versions.append(before)
            else:
                versions.append(read(key[0], name, before is not None))
        return Fingerprint(str((item.get("metadata") or {}).get("resourceVersion") or ""), tuple(versions))

    def unchanged(self, key: Key, item: Mapping[str, Any], fingerprint: Fingerprint) -> bool:
        """Nothing a resync looks for can have changed since the object's last reconcile."""
        seen = self._seen.get(key)
        return (seen is not None and settled(item) and seen.fingerprint == fingerprint
                and self._clock() - seen.full_at < self.full_seconds)

    def record(self, key: Key, fingerprint: Fingerprint, started: float) -> None:
        self._seen[key] = Reconciled(fingerprint, started)

    def forget(self, key: Key) -> None:
        self._seen.pop(key, None)


METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


def read_config_map_version(core: Any, namespace: str, name: str, *, metadata_only: bool) -> ConfigMapVersion:
    """A ConfigMap's version; missing is a version too. Other errors raise: the caller reconciles in full,
    which reports them. Metadata only keeps a large ConfigMap's content on the apiserver, but has no
    `immutable` (a top-level field): the caller asks for it once, whole."""
    headers = {"Accept": METADATA_ONLY} if metadata_only else {}
    doc = kube.read_json(core.read_namespaced_config_map, name, namespace, _headers=headers)
    if doc is None:
        return ConfigMapVersion(name, None, None)
    meta = doc.get("metadata") or {}
    return ConfigMapVersion(name, meta.get("uid"), meta.get("resourceVersion"), bool(doc.get("immutable")))
