"""Which container images the local pod runner executes, and how.

No container runtime runs here, so an image means nothing by itself. A rule maps images to a local
entrypoint (what the image's ENTRYPOINT would be) and directories put first on PATH. The default rule
maps our own image — any image whose repository's last path element is `schemagate`
(`schemagate:dev`, `ghcr.io/acme/schemagate:0.1.0`, `localhost:5000/x/schemagate@sha256:...`) — to
the `schemagate` console script of this repository's .venv, so a container's `schemagate migrate ...`
runs the code under test.

Override with SCHEMAGATE_IMAGE_MAP, a JSON list of rules:
  [{"match": "busybox", "entrypoint": ["sh"], "path": ["/usr/bin"]}]
`match` is an fnmatch pattern against the repository's last path element (tag and digest removed).
Pods of unmapped images are not run, except Job pods, which run their `command`+`args` as given.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class ImageRule:
    match: str
    entrypoint: tuple[str, ...] = ()
    path: tuple[str, ...] = ()


def repository_name(image: str) -> str:
    """Last path element of an image reference without tag or digest: ghcr.io:443/a/b:1 -> b."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def default_rules() -> tuple[ImageRule, ...]:
    venv_bin = REPO_ROOT / ".venv" / "bin"
    return (ImageRule("schemagate", entrypoint=("schemagate",), path=(str(venv_bin),)),)


def rules_from_env(environ: dict[str, str] | None = None) -> tuple[ImageRule, ...]:
    raw = (environ if environ is not None else os.environ).get("SCHEMAGATE_IMAGE_MAP")
    if not raw:
        return default_rules()
    try:
        items = json.loads(raw)
        return tuple(ImageRule(str(i["match"]), tuple(i.get("entrypoint", ())), tuple(i.get("path", ())))
                     for i in items)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"SCHEMAGATE_IMAGE_MAP is not a JSON list of {{match, entrypoint, path}}: {exc}") from exc


def lookup(image: str, rules: tuple[ImageRule, ...]) -> ImageRule | None:
    name = repository_name(image)
    return next((r for r in rules if fnmatch.fnmatchcase(name, r.match)), None)
