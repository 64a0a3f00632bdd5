"""An approver sees exactly the statements status.plan.hash covers: `migrate plan --review` (no database)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from schemagate import cli
from schemagate.api.v1alpha1 import SchemaMigrationSpec
from schemagate.controller import jobs, policy, review
from schemagate.controller import decide as p
from schemagate.migrate import preview, source
from schemagate.migrate.errors import MigrateError

FILES = {
    "00001_accounts.sql": "-- +goose Up\nCREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY);\n"
                          "-- +goose Down\nDROP TABLE IF EXISTS accounts;\n",
    "00002_email.sql": "-- +goose Up\nALTER TABLE accounts ADD COLUMN IF NOT EXISTS email text;\n"
                       "-- +goose Down\nALTER TABLE accounts DROP COLUMN IF EXISTS email;\n",
    "00003_index.sql": "-- +goose NO TRANSACTION\n-- +goose Up\n"
                       "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_email ON accounts (email);\n"
                       "-- +goose Down\nDROP INDEX CONCURRENTLY IF EXISTS idx_email;\n",
}
SPEC = {"database": {"secretRef": {"name": "db"}}, "source": {"configMaps": ["m1", "m2"]}, "approval": "Manual",
        "backup": {"claimName": "dumps"}}


def awaiting(files=FILES, db=p.ObservedDatabase(1, frozenset({1})), target=None, generation=3, retry="r1", downgrade=False):
    """kubectl's List: the SchemaMigration with the status.plan the operator writes, and its ConfigMaps."""
    migrations = tuple(p.migration_file(m) for m in source.load_files(files, env={}))
    spec = {**SPEC, "targetVersion": "latest" if target is None else target, "allowDowngrade": downgrade}
    i = p.Inputs(name="app", namespace="prod", generation=generation, target=target, migrations=migrations, db=db,
                 retry=retry, allow_downgrade=downgrade)
    d = policy.decide(i, p.plan(i), SchemaMigrationSpec.model_validate(spec), annotations={}, old={}, findings=[])
    smig = {"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration",
            "metadata": {"name": "app", "namespace": "prod", "generation": generation,
                         "annotations": {"schemagate.io/retry": retry}},
            "spec": spec, "status": {"observedGeneration": generation, "plan": d.plan, "phase": "AwaitingApproval"}}
    names = sorted(files)
    cms = [{"kind": "ConfigMap", "metadata": {"name": "m1", "namespace": "prod"},
            "data": {n: files[n] for n in names[:1]}},
           {"kind": "ConfigMap", "metadata": {"name": "m2", "namespace": "prod"},
            "data": {n: files[n] for n in names[1:]}}]
    return {"apiVersion": "v1", "kind": "List", "items": [smig, *cms]}, d, i


def test_the_statements_of_the_plan_to_approve_and_its_hash():
    doc, d, i = awaiting()
    pv = review.preview_from_kubectl(json.dumps(doc), "/nonexistent", preview.AsWritten())
    assert pv.plan_hash == d.plan["hash"]
    assert [(s.migration.file, s.direction) for s in pv.steps] == [("00002_email.sql", "up"), ("00003_index.sql", "up")]
    assert (pv.version_before, pv.version_after) == (1, 3)
    # the digest the Job will be pinned to once approved
    assert pv.files_digest == jobs.plan_digest(i.migrations, "up", 3, i.db)[0]
    text = preview.to_text(pv)
    assert f"plan hash {d.plan['hash']}: recomputed from these files, equal to status.plan.hash" in text
    assert "ADD COLUMN IF NOT EXISTS email" in text and "NO TRANSACTION" in text


def test_a_rollback_plan_shows_the_down_sections():
    doc, d, _ = awaiting(db=p.ObservedDatabase(3, frozenset({1, 2, 3})), target=1, downgrade=True)
    pv = review.preview_from_kubectl(json.dumps(doc), ".", preview.AsWritten())
    assert [(s.migration.version, s.direction) for s in pv.steps] == [(3, "down"), (2, "down")]
    assert pv.plan_hash == d.plan["hash"] and pv.verb == "down-to"


def test_an_edited_configmap_is_not_the_plan():
    doc, _, _ = awaiting()
    doc["items"][2]["data"]["00003_index.sql"] += "-- edited\n"
    with pytest.raises(MigrateError) as e:
        review.preview_from_kubectl(json.dumps(doc), ".", preview.AsWritten())
    assert e.value.reason == "SourceChanged" and "00003_index.sql" in e.value.message


@pytest.mark.parametrize("change, says", [
    (lambda smig: smig["metadata"].update(generation=4), "its spec changed since"),
    (lambda smig: smig["metadata"]["annotations"].update({"schemagate.io/retry": "r2"}), "retry annotation"),
    (lambda smig: smig["spec"].pop("backup"), "backup claim"),
])
def test_the_object_changed_since_the_plan(change, says):
    doc, _, _ = awaiting()
    change(doc["items"][0])
    with pytest.raises(MigrateError) as e:
        review.preview_from_kubectl(json.dumps(doc), ".", preview.AsWritten())
    assert e.value.reason == "SourceChanged" and says in e.value.message


def test_files_from_dir_when_the_input_has_no_configmaps(tmp_path: Path):
    doc, d, _ = awaiting()
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    assert review.preview_from_kubectl(json.dumps(doc["items"][0]), str(tmp_path),
                                       preview.AsWritten()).plan_hash == d.plan["hash"]


def test_missing_configmap_and_image_sources_are_said():
    doc, _, _ = awaiting()
    partial = copy.deepcopy(doc)
    partial["items"].pop()
    with pytest.raises(MigrateError, match="ConfigMap prod/m2 .* is not in the input"):
        review.preview_from_kubectl(json.dumps(partial), ".", preview.AsWritten())
    smig = doc["items"][0]
    smig["spec"]["source"] = {"image": {"image": "registry/app-migrations:1", "path": "/migrations"}}
    with pytest.raises(MigrateError, match="from image registry/app-migrations:1"):
        review.review(smig, [])
    with pytest.raises(MigrateError, match="not JSON"):
        review.parse_input("kind: List")


def test_cli_review_json(tmp_path: Path, capsys):
    doc, d, _ = awaiting()
    path = tmp_path / "smig.json"
    path.write_text(json.dumps(doc))
    assert cli.main(["migrate", "plan", "--review", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["planHash"] == d.plan["hash"] and out["verb"] == "up-to"
    assert [(s["version"], s["noTransaction"]) for s in out["steps"]] == [(2, False), (3, True)]
    assert out["steps"][1]["statements"] == [
        {"line": 3, "sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_email ON accounts (email);"}]
    assert cli.main(["migrate", "plan", "up", "--review", str(path)]) == 2
    assert "takes no verb" in capsys.readouterr().err


def test_envsub_files_are_shown_as_written():
    files = {**FILES, "00004_role.sql": "-- +goose Up\n-- +goose ENVSUB ON\nALTER ROLE app PASSWORD '${APP_PW}';\n"
                                        "-- +goose Down\nSELECT 1;\n"}
    doc, _, _ = awaiting(files=files)
    pv = review.preview_from_kubectl(json.dumps(doc), ".", preview.AsWritten())
    text = preview.to_text(pv)
    assert "ALTER ROLE app PASSWORD '${APP_PW}';" in text and "ENVSUB" in text
