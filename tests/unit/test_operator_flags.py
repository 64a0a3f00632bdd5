"""`schemagate operator` flags from the environment: a variable the kubelet or a chart sets to something
else must not stop the operator when the flag itself is given, and says which flag when it is used."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

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


def test_the_operator_runs_kopf_with_our_handlers_registered():
    """Handlers register when their module is imported: the command must import them before kopf starts,
    or kopf runs an operator with nothing to do (and scans the cluster, with 403s, for lack of our startup).
    A fresh interpreter: in this one another test may have imported them already."""
    script = textwrap.dedent("""
        import json, sys, kopf
        from schemagate.controller import main
        def fake_run(**kw):
            registry = kopf.get_default_registry()
            names = [h.fn.__qualname__ for h in registry._activities.get_all_handlers()]
            print(json.dumps({"activities": names, "namespaces": kw["namespaces"]}))
        kopf.run = fake_run
        import argparse
        p = argparse.ArgumentParser(); main.add_arguments(p)
        sys.exit(main.run(p.parse_args(["--namespace", "app", "--metrics-port", "0"])))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"startup", "cleanup"} <= set(seen["activities"]) and seen["namespaces"] == ["app"], seen
