"""What the wheel and the image ship: the schemagate package alone. Test and demo support (devenv/) is
not product, and nothing in the product starts a test cluster's processes."""

from __future__ import annotations

import re
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_packages_are_schemagate_only() -> None:
    # pyproject.toml: [tool.setuptools.packages.find] where = ["operator"]
    packages = find_packages(where=str(REPO / "operator"))
    assert packages and all(p == "schemagate" or p.startswith("schemagate.") for p in packages), packages
    assert not (REPO / "operator" / "schemagate" / "devenv").exists()


def test_no_product_module_imports_devenv_or_runs_cluster_binaries() -> None:
    binaries = re.compile(r"[\"'](etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy|"
                          r"containerd|buildah|debootstrap|initdb|pg_ctl)[\"']")
    for path in (REPO / "operator" / "schemagate").rglob("*.py"):
        text = path.read_text()
        assert "devenv" not in text, f"{path} refers to devenv (test support)"
        assert not binaries.search(text), f"{path} names a test cluster's binary: {binaries.search(text)}"
