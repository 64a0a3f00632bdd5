"""requirements/runtime.lock is what the image installs (`pip install --require-hashes -r`): every runtime
dependency of pyproject.toml pinned, at a version its range allows, with hashes. Regenerate it with the
command in its header when pyproject's dependencies change."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements" / "runtime.lock"


def _pins() -> dict[str, tuple[str, list[str]]]:
    """name → (version, hashes), from pip-compile's `name==version \\` + `--hash=sha256:...` blocks."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)==([^\s\\]+)", line)
        if m:
            current = canonicalize_name(m.group(1))
            pins[current] = (m.group(2), [])
            continue
        h = re.match(r"^\s+--hash=sha256:([0-9a-f]{64})", line)
        if h and current:
            pins[current][1].append(h.group(1))
        elif line.strip() and not line.lstrip().startswith(("#", "--hash")):
            assert not line.startswith("-"), f"{LOCK.name}: option line {line!r}: keep the lock to pins and hashes"
    return pins


def _dependencies() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(d) for d in project["dependencies"]]


def test_every_runtime_dependency_is_pinned_within_its_range():
    pins = _pins()
    for req in _dependencies():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} from pyproject.toml is not in {LOCK.name}: regenerate it"
        version = pins[name][0]
        assert req.specifier.contains(version, prereleases=True), \
            f"{LOCK.name} pins {name}=={version}, outside pyproject.toml's {req}: regenerate it"


def test_extras_are_pinned_too():
    pins = _pins()
    # psycopg[binary] pulls psycopg-binary, which must be the same release as psycopg
    assert pins["psycopg-binary"][0] == pins["psycopg"][0]


def test_every_pin_carries_hashes_and_nothing_is_left_unpinned():
    pins = _pins()
    assert pins and all(hashes for _, hashes in pins.values()), [n for n, (_, h) in pins.items() if not h]
    text = LOCK.read_text()
    assert "--find-links" not in text and "--index-url" not in text  # nothing of one machine's pip setup
    assert "pip-compile --allow-unsafe --generate-hashes" in text  # how to regenerate it, in its header


def test_the_build_backend_is_locked_too():
    """The image builds schemagate itself with --no-build-isolation from requirements/build.lock, so the
    build backend is hash-checked like the rest."""
    build = REPO / "requirements" / "build.lock"
    pinned = {canonicalize_name(m.group(1)): m.group(2)
              for m in re.finditer(r"^([A-Za-z0-9._-]+)==([^\s\\]+)", build.read_text(), re.M)}
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for req in map(Requirement, requires):
        assert req.specifier.contains(pinned.get(canonicalize_name(req.name), "0"), prereleases=True), \
            f"{req} (build-system.requires) is not pinned within its range in {build.name}: regenerate it"
    assert build.read_text().count("--hash=sha256:") >= len(pinned)
