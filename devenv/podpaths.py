"""The path convention of the local pod runner.

A container's volumes are materialised on the host under the pod's directory; its processes run on
the host file system. So any absolute path that lies under one of the container's volumeMount
mountPaths, or equals its terminationMessagePath, is rewritten to the materialised location when it
appears as:
  - a whole argument / command element / env value:        /migrations/001.sql
  - the value part after the first '=' of one:             --dir=/migrations, PGPASSFILE=/etc/pg/pass
The longest matching mountPath wins; subPath mounts map to the subPath inside the volume. Other
paths are left alone (a program reading a path it builds itself, say from in-cluster defaults,
sees the host's file system).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class PathMap:
    """mountPath (container) -> host directory, longest first."""

    mounts: tuple[tuple[str, str], ...]

    @classmethod
    def build(cls, mounts: dict[str, str]) -> "PathMap":
        norm = {str(PurePosixPath(k)): v for k, v in mounts.items()}
        return cls(tuple(sorted(norm.items(), key=lambda kv: len(kv[0]), reverse=True)))

    def host_path(self, path: str) -> str | None:
        if not path.startswith("/"):
            return None
        p = str(PurePosixPath(path))
        for mount, host in self.mounts:
            if p == mount:
                return host + ("/" if path.endswith("/") and not host.endswith("/") else "")
            if mount == "/" or p.startswith(mount + "/"):
                rest = p[len(mount):].lstrip("/")
                return f"{host.rstrip('/')}/{rest}"
        return None

    def rewrite(self, value: str) -> str:
        if (whole := self.host_path(value)) is not None:
            return whole
        key, sep, rest = value.partition("=")
        if sep and (mapped := self.host_path(rest)) is not None:
            return f"{key}={mapped}"
        return value
