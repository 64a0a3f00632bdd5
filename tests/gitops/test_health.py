"""What GitOps tools read from a SchemaMigration, checked with their own code: kstatus (Flux, kstatus-based
waits; hack/kstatus, sigs.k8s.io/cli-utils) and Argo CD's health.lua under gopher-lua (hack/argocd-health).
A pipeline must never go on while a plan awaits a person's approval: that is InProgress and Suspended,
never Current or Healthy. The objects are the operator's own writing (tests/gitops/phases.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.gitops import phases

REPO = phases.REPO


def _build(script: str) -> str:
    done = subprocess.run([str(REPO / "hack" / script)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"hack/{script} failed:\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def kstatus() -> str:
    return _build("build-kstatus.sh")


@pytest.fixture(scope="module")
def argocd_health() -> str:
    return _build("build-argocd-health.sh")


def test_the_testdata_is_what_the_operator_writes(monkeypatch):
    generated = phases.generate(monkeypatch)
    stale = [f for f, obj in generated.items() if not (phases.TESTDATA / f).exists() or phases.load(f) != obj]
    assert not stale, f"{stale}: regenerate with `python -m tests.gitops.phases`"
    assert sorted(p.name for p in phases.TESTDATA.iterdir()) == sorted(generated)
    tests = phases.health_tests(generated)
    assert phases.yaml.safe_load((phases.HEALTH / "health_test.yaml").read_text()) == tests


def test_kstatus_reads_every_phase_right(kstatus):
    files = list(phases.PHASES)
    objects = [phases.load(f) for f in files]
    done = subprocess.run([kstatus], input=json.dumps(objects), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = {f: json.loads(line)["status"] for f, line in zip(files, done.stdout.splitlines())}
    assert got == {f: phases.PHASES[f][2] for f in files}


def test_argocd_health_lua_passes_its_tests_under_gopher_lua(argocd_health):
    done = subprocess.run([argocd_health, str(phases.HEALTH.parents[1])], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == f"{len(phases.PHASES)} passed, 0 failed"


def test_the_runner_catches_a_wrong_health(argocd_health, tmp_path: Path):
    # The runner itself must fail on a mismatch, or the test above proves nothing.
    kind = tmp_path / "schemagate.io" / "SchemaMigration"
    (kind / "testdata").mkdir(parents=True)
    (kind / "health.lua").write_text((phases.HEALTH / "health.lua").read_text())
    (kind / "testdata" / "a.yaml").write_text((phases.TESTDATA / "awaiting_approval.yaml").read_text())
    (kind / "health_test.yaml").write_text(phases.dump(
        {"tests": [{"healthStatus": {"status": "Healthy", "message": ""}, "inputPath": "testdata/a.yaml"}]}))
    done = subprocess.run([argocd_health, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout.splitlines()[-1] == "0 passed, 1 failed"


def test_kstatus_needs_no_ready_fallback_to_hold_a_pipeline(kstatus):
    # kstatus's own rules are Reconciling/Stalled and observedGeneration; reading Ready is a fallback for
    # resources that set neither (and older kstatus releases lack it). Without Ready, only a Ready object
    # may read Current.
    files = list(phases.PHASES)
    objects = []
    for f in files:
        obj = phases.load(f)
        obj["status"]["conditions"] = [c for c in obj["status"]["conditions"] if c["type"] != "Ready"]
        objects.append(obj)
    done = subprocess.run([kstatus], input=json.dumps(objects), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    current = [f for f, line in zip(files, done.stdout.splitlines()) if json.loads(line)["status"] == "Current"]
    assert current == ["ready.yaml"]
