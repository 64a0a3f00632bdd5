"""The client configuration is chosen without a word on stdout: `migrate --json` prints only its JSON."""

from __future__ import annotations

import pytest
from kubernetes import config

from schemagate import kube


@pytest.fixture
def loaders(monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(kube, "_loaded", False)
    monkeypatch.setattr(config, "load_incluster_config", lambda **kw: calls.append(("incluster", kw)))
    monkeypatch.setattr(config, "load_kube_config", lambda **kw: calls.append(("kubeconfig", kw)))
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")  # no ~/.kube/config
    return calls


def test_in_a_pod_the_service_account_is_used_and_nothing_is_printed(loaders, monkeypatch, capfd):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    kube.load()
    assert loaders == [("incluster", {})]
    assert capfd.readouterr().out == ""


def test_kubeconfig_wins_when_set_even_in_a_pod(loaders, monkeypatch, capfd):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBECONFIG", "/tmp/kc")
    kube.load()
    assert loaders == [("kubeconfig", {"config_file": "/tmp/kc"})]
    assert capfd.readouterr().out == ""


def test_outside_a_pod_the_default_kubeconfig_is_used(loaders, capfd):
    kube.load()
    assert loaders == [("kubeconfig", {})]
    assert capfd.readouterr().out == ""
