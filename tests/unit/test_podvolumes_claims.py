"""The local pod runner's persistentVolumeClaim: one directory per namespace/claim, kept across pods."""

from __future__ import annotations

from pathlib import Path

from devenv.podvolumes import materialise


def pod(name: str, claim: str = "backups", ns: str = "team") -> dict:
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"volumes": [{"name": "b", "persistentVolumeClaim": {"claimName": claim}}]}}


def none(ns: str, name: str) -> None:
    return None


def test_claim_survives_the_pod_and_is_shared_per_namespace(tmp_path: Path):
    claims = tmp_path / "claims"
    first = materialise(pod("p1"), tmp_path / "p1", secrets=none, configmaps=none, token=lambda a, s: "", claims=claims)
    (first["b"] / "x.dump").write_text("dump")
    second = materialise(pod("p2"), tmp_path / "p2", secrets=none, configmaps=none, token=lambda a, s: "", claims=claims)
    assert (second["b"] / "x.dump").read_text() == "dump"
    other_ns = materialise(pod("p3", ns="other"), tmp_path / "p3", secrets=none, configmaps=none,
                           token=lambda a, s: "", claims=claims)
    assert not (other_ns["b"] / "x.dump").exists()
