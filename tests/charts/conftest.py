"""Fixtures for the chart tests: helm (from KUBEBUILDER_ASSETS) for rendering, checkov in its own venv.

checkov pins packaging<24 while pytest needs packaging>=24, so it cannot live in the project's venv; it
gets its own, built once under $SCHEMAGATE_CACHE (like goose and the Kubernetes binaries).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart_support import CHARTS, Render, helm_run

CHECKOV_VERSION = "3.3.30"


def _cache() -> Path:
    return Path(os.environ.get("SCHEMAGATE_CACHE", Path.home() / ".cache" / "schemagate"))


@pytest.fixture(scope="session")
def helm_bin() -> str:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets or not os.access(Path(assets) / "helm", os.X_OK):
        pytest.fail("helm not found: KUBEBUILDER_ASSETS must point at the binaries hack/build-k8s.sh builds "
                    "(run the tests through hack/test.sh)")
    return str(Path(assets) / "helm")


@pytest.fixture(scope="session")
def render(helm_bin: str) -> Render:
    """helm template CHART with --set pairs; returns the rendered objects."""
    def run(chart: str | Path, *sets: str, namespace: str = "ops", release: str = "sg") -> list[dict[str, Any]]:
        args = ["template", release, str(CHARTS / chart if isinstance(chart, str) else chart),
                "--namespace", namespace]
        for s in sets:
            args += ["--set", s]
        out = helm_run(helm_bin, *args).stdout
        return [d for d in yaml.safe_load_all(out) if d]
    return run


@pytest.fixture(scope="session")
def checkov_bin() -> str:
    venv = _cache() / f"checkov-{CHECKOV_VERSION}"
    exe = venv / "bin" / "checkov"
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Test workers may both find it missing on a cold cache: one builds, the other waits for it.
    with open(venv.parent / f"checkov-{CHECKOV_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            _install_checkov(venv)
    return str(exe)


def _install_checkov(venv: Path) -> None:
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
              f"checkov=={CHECKOV_VERSION}"]]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            pytest.fail(f"installing checkov {CHECKOV_VERSION} into {venv} failed: {proc.stderr.strip()[-2000:]}")
