"""The API models and the CRD generated from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from schemagate.api import crd
from schemagate.api.v1alpha1 import SchemaMigration, SchemaMigrationSpec

REPO = Path(__file__).resolve().parents[2]


def _spec(**over):
    base = {"database": {"secretRef": {"name": "db"}}, "source": {"configMaps": ["m1"]}}
    base.update(over)
    return base


def test_checked_in_crd_matches_the_models():
    checked_in = (REPO / "crds" / crd.CRD_FILE).read_text()
    assert checked_in == crd.render(), "crds/ is stale: run `schemagate crd --write crds/`"


def test_checked_in_reference_matches_the_models():
    checked_in = (REPO / "docs" / "reference.md").read_text()
    assert checked_in == crd.reference(), "docs/reference.md is stale: run `schemagate crd --write crds/ --reference docs/reference.md`"


def test_crd_names_and_printer_columns():
    doc = crd.crd()
    names = doc["spec"]["names"]
    assert (doc["spec"]["group"], names["kind"], names["plural"], names["shortNames"]) == (
        "schemagate.io", "SchemaMigration", "schemamigrations", ["smig"])
    assert doc["spec"]["scope"] == "Namespaced"
    version = doc["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"]: c.get("priority", 0) for c in version["additionalPrinterColumns"]}
    assert columns == {"Current": 0, "Target": 0, "Phase": 0, "Ready": 0, "Age": 0, "Reason": 1, "Message": 1}


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_schema_is_structural(resource):
    """Every node typed (or int-or-string), no $ref or unions left over from pydantic."""
    schema = crd.crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def visit(node, path):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title", "$defs"} & node.keys(), path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        for name, sub in node.get("properties", {}).items():
            visit(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            visit(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            visit(node["additionalProperties"], f"{path}{{}}")

    visit(schema, "")


def test_schema_carries_defaults_and_admission_rules():
    spec = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["database"]["properties"]["table"]["default"] == "goose_db_version"
    assert spec["database"]["properties"]["secretRef"]["properties"]["key"]["default"] == "url"
    assert spec["targetVersion"]["default"] == "latest"
    assert spec["job"]["default"] == {} and spec["lock"]["default"] == {}
    messages = [r["message"] for r in spec["source"]["x-kubernetes-validations"]]
    assert messages == ["source needs exactly one of configMaps or image"]
    assert spec["targetVersion"]["x-kubernetes-validations"][0]["message"].startswith("targetVersion must be")


def test_spec_defaults_and_camel_case():
    spec = SchemaMigrationSpec.model_validate(_spec())
    assert spec.database.table == "goose_db_version"
    assert spec.database.secret_ref.key == "url"
    assert spec.target() is None
    assert spec.job.backoff_limit == 0 and spec.lock.lease_duration_seconds == 15
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["database"]["secretRef"] == {"name": "db", "key": "url"}


@pytest.mark.parametrize("value, expected", [("latest", None), ("7", 7), (7, 7), ("20240101120000", 20240101120000)])
def test_target_version_forms(value, expected):
    assert SchemaMigrationSpec.model_validate(_spec(targetVersion=value)).target() == expected


@pytest.mark.parametrize("value", ["newest", "-1", "1.5", ""])
def test_target_version_nonsense_is_rejected(value):
    spec = SchemaMigrationSpec.model_validate(_spec(targetVersion=value))
    with pytest.raises(ValueError, match="targetVersion"):
        spec.target()


@pytest.mark.parametrize("over, field", [
    ({"database": {"secretRef": {"name": "Bad_Name"}}}, "database.secretRef.name"),
    ({"database": {"secretRef": {"name": "db"}, "table": "goose; drop"}}, "database.table"),
    ({"lock": {"lockTimeout": "ten seconds"}}, "lock.lockTimeout"),
    ({"job": {"backoffLimit": -1}}, "job.backoffLimit"),
])
def test_invalid_spec_names_the_field(over, field):
    with pytest.raises(ValidationError) as err:
        SchemaMigrationSpec.model_validate(_spec(**over))
    assert field in str(err.value)


def test_whole_object_parses_with_status():
    obj = SchemaMigration.model_validate({
        "apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration",
        "metadata": {"name": "x"}, "spec": _spec(),
        "status": {"phase": "Ready", "currentVersion": 3, "conditions": [
            {"type": "Ready", "status": "True", "reason": "UpToDate", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
    })
    assert obj.status.current_version == 3


def test_crd_command_writes_the_file(tmp_path):
    from schemagate.cli import main

    assert main(["crd", "--write", str(tmp_path)]) == 0
    doc = yaml.safe_load((tmp_path / crd.CRD_FILE).read_text())
    assert doc["metadata"]["name"] == "schemamigrations.schemagate.io"


def test_checked_in_set_crd_matches_the_models():
    checked_in = (REPO / "crds" / crd.SET_CRD_FILE).read_text()
    assert checked_in == crd.render(crd.SCHEMA_MIGRATION_SET), "crds/ is stale: run `schemagate crd --write crds/`"


def test_set_crd_names_and_printer_columns():
    doc = crd.crd(crd.SCHEMA_MIGRATION_SET)
    names = doc["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "SchemaMigrationSet", "schemamigrationsets", ["smigset"])
    columns = [c["name"] for c in doc["spec"]["versions"][0]["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Databases", "Ready", "Failed", "Target", "Phase", "Age"]
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["strategy"]["default"] == {}
    assert [r["message"] for r in spec["properties"]["databases"]["x-kubernetes-validations"]] == [
        "databases needs a selector, a list of secrets, or both"]


def test_crd_command_writes_both_files(tmp_path):
    from schemagate.cli import main

    assert main(["crd", "--write", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [crd.CRD_FILE, crd.SET_CRD_FILE]
