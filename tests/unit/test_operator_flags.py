"""`schemagate operator` flags from the environment: a variable the kubelet or a chart sets to something
else must not stop the operator when the flag itself is given, and says which flag when it is used."""

from __future__ import annotations

import argparse

import pytest

from schemagate.controller import main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    main.add_arguments(p)
    return p


def test_a_service_link_variable_does_not_stop_the_operator_when_the_flag_is_given(monkeypatch):
    # What Kubernetes puts in a pod of a namespace with a Service named schemagate-metrics.
    monkeypatch.setenv("SCHEMAGATE_METRICS_PORT", "tcp://10.96.0.58:8081")
    monkeypatch.setenv("SCHEMAGATE_RESYNC_SECONDS", "12")
    args = parser().parse_args(["--metrics-port", "9090"])
    assert args.metrics_port == 9090 and args.resync_seconds == 12.0 and args.full_resync_seconds == 600.0


def test_a_bad_variable_used_as_the_default_names_the_flag(monkeypatch, capsys):
    monkeypatch.setenv("SCHEMAGATE_METRICS_PORT", "tcp://10.96.0.58:8081")
    with pytest.raises(SystemExit):
        parser().parse_args([])
    assert "--metrics-port" in capsys.readouterr().err
