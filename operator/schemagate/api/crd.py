"""`schemagate crd`: the SchemaMigration and SchemaMigrationSet CustomResourceDefinitions, generated from
the pydantic models.

pydantic emits JSON Schema with $refs and `anyOf: [X, null]`; Kubernetes wants a structural schema
(every node typed, no $ref, no null unions). `structural()` bridges the two; nothing is written by hand.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from schemagate.api import migrationset as set_api
from schemagate.api import v1alpha1 as api

CRD_FILE = f"{api.GROUP}_{api.PLURAL}.yaml"
SET_CRD_FILE = f"{api.GROUP}_{set_api.PLURAL}.yaml"

_DROP = {"title"}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Current", "type": "integer", "jsonPath": ".status.currentVersion",
     "description": "Version the database is at"},
    {"name": "Target", "type": "integer", "jsonPath": ".status.targetVersion",
     "description": "Version the database should reach"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Reason", "type": "string", "priority": 1,
     "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"},
    {"name": "Message", "type": "string", "priority": 1,
     "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"},
]


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """Turn pydantic's JSON Schema into a Kubernetes structural OpenAPI v3 schema."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        node = dict(node)
        if "anyOf" in node:
            options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
            if node.get("default", "") is None:
                node.pop("default")
            if len(options) == 1:
                node = {**options[0], **node}
            elif not node.get("x-kubernetes-int-or-string"):
                raise ValueError(f"cannot express union {options} in a structural schema")
        if "$ref" in node:
            target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
            # Field-level keywords (description, default) win over the referenced model's.
            node = {**target, **node}
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROP or key == "$defs":
                continue
            if key == "properties":
                out[key] = {name: walk(sub) for name, sub in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = walk(value)
            else:
                out[key] = copy.deepcopy(value)
        return out

    out: dict[str, Any] = walk(schema)
    return out


SET_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Databases", "type": "integer", "jsonPath": ".status.databases", "description": "Databases of the set"},
    {"name": "Ready", "type": "integer", "jsonPath": ".status.ready",
     "description": "Databases at the target with the current template"},
    {"name": "Failed", "type": "integer", "jsonPath": ".status.failed"},
    {"name": "Target", "type": "integer", "jsonPath": ".status.targetVersion"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Lowest", "type": "integer", "priority": 1, "jsonPath": ".status.lowestVersion"},
    {"name": "Highest", "type": "integer", "priority": 1, "jsonPath": ".status.highestVersion"},
    {"name": "Message", "type": "string", "priority": 1,
     "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"},
]


@dataclass(frozen=True)
class Resource:
    """One custom resource kind: its names, its models and what `kubectl get` shows."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: list[dict[str, Any]]
    # Nested defaults only apply when the parent object exists; an empty default makes them apply always.
    defaulted: tuple[tuple[str, ...], ...]

    @property
    def file(self) -> str:
        return f"{api.GROUP}_{self.plural}.yaml"


SCHEMA_MIGRATION = Resource(
    api.KIND, api.PLURAL, api.SINGULAR, tuple(api.SHORT_NAMES), api.SchemaMigrationSpec, api.SchemaMigrationStatus,
    "SchemaMigration migrates one PostgreSQL database with goose-format migrations, running them as a Job that "
    "holds a Lease, and reports where the schema stands.", PRINTER_COLUMNS, (("job",), ("lock",)))
SCHEMA_MIGRATION_SET = Resource(
    set_api.KIND, set_api.PLURAL, set_api.SINGULAR, tuple(set_api.SHORT_NAMES), set_api.SchemaMigrationSetSpec,
    set_api.SchemaMigrationSetStatus,
    "SchemaMigrationSet rolls one migration source out to many PostgreSQL databases (Secrets by label or name): "
    "it owns one SchemaMigration per database and updates them canary first, then a few at a time.",
    SET_PRINTER_COLUMNS,
    (("template",), ("strategy",), ("template", "job"), ("template", "lock"), ("strategy", "canary")))
RESOURCES = (SCHEMA_MIGRATION, SCHEMA_MIGRATION_SET)


def openapi_schema(resource: Resource = SCHEMA_MIGRATION) -> dict[str, Any]:
    spec = structural(resource.spec.model_json_schema(by_alias=True))
    status = structural(resource.status.model_json_schema(by_alias=True))
    for path in resource.defaulted:
        node = spec
        for name in path:
            node = node["properties"][name]
        node["default"] = {}
    root: dict[str, Any] = {"x-kubernetes-validations": [api.NAME_RULE]} if resource is SCHEMA_MIGRATION else {}
    return {
        "type": "object",
        "description": resource.description,
        **root,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def crd(resource: Resource = SCHEMA_MIGRATION) -> dict[str, Any]:
    r = resource
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{r.plural}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {"kind": r.kind, "plural": r.plural, "singular": r.singular,
                      "shortNames": list(r.short_names), "listKind": f"{r.kind}List",
                      "categories": ["schemagate"]},
            "versions": [{
                "name": api.VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": r.columns,
                "schema": {"openAPIV3Schema": openapi_schema(r)},
            }],
        },
    }


def render(resource: Resource = SCHEMA_MIGRATION) -> str:
    source = "v1alpha1.py" if resource is SCHEMA_MIGRATION else "migrationset.py"
    header = f"# Generated by `schemagate crd --write crds/` from operator/schemagate/api/{source}. Do not edit.\n"
    return header + yaml.safe_dump(crd(resource), sort_keys=False, width=120)


def _type(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    t = node.get("type", "")
    if t == "array":
        return f"[]{_type(node.get('items') or {})}"
    if t == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'])}"
    return str(t)


def _rows(node: dict[str, Any], path: str, required: bool, out: list[str]) -> None:
    if path:
        notes = []
        if "enum" in node:
            notes.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
        for key, label in (("minimum", "≥"), ("maximum", "≤"), ("minItems", "items ≥"), ("maxItems", "items ≤")):
            if key in node:
                notes.append(f"{label} {node[key]}")
        if "pattern" in node:
            notes.append(f"pattern `{node['pattern']}`")
        for rule in node.get("x-kubernetes-validations", []):
            notes.append(f"rule: {rule['message']}")
        default = f"`{json_dumps(node['default'])}`" if "default" in node else ""
        text = " ".join(str(node.get("description", "")).split())
        if notes:
            text = (text + " " if text else "") + "(" + "; ".join(notes) + ")"
        out.append(f"| `{path}` | {_type(node)} | {'yes' if required else ''} | {default} | {text.replace('|', '/')} |")
    props = node.get("properties") or (node.get("items") or {}).get("properties") or {}
    needed = set(node.get("required") or (node.get("items") or {}).get("required") or [])
    prefix = path + ("[]" if node.get("type") == "array" else "")
    for name, sub in props.items():
        _rows(sub, f"{prefix}.{name}" if prefix else name, name in needed, out)


def json_dumps(value: Any) -> str:
    return json.dumps(value)


def reference() -> str:
    """docs/reference.md: every field of the API, generated from the same schema as the CRD."""
    schema = openapi_schema()
    out = ["# SchemaMigration reference (schemagate.io/v1alpha1)", "",
           "Generated by `schemagate crd --reference docs/reference.md` from the pydantic models; do not edit.",
           "", "`kubectl explain schemamigration.spec` shows the same descriptions.", ""]
    for part in ("spec", "status"):
        out += [f"## {part}", "", "| Field | Type | Required | Default | Description |", "|---|---|---|---|---|"]
        _rows(schema["properties"][part], part, False, out)
        out.append("")
    out += ["## Printer columns", "", "| Column | JSONPath | Shown |", "|---|---|---|"]
    out += [f"| {c['name'].upper()} | `{c['jsonPath']}` | {'-o wide' if c.get('priority') else 'always'} |"
            for c in PRINTER_COLUMNS]
    out += ["", "## Annotations", "",
            f"- `{api.RETRY_ANNOTATION}`: set to any new value to run the current plan again after a failure.", ""]
    return "\n".join(out + _set_reference())


def _set_reference() -> list[str]:
    r = SCHEMA_MIGRATION_SET
    schema = openapi_schema(r)
    out = ["# SchemaMigrationSet reference (schemagate.io/v1alpha1)", "",
           "`kubectl explain schemamigrationset.spec` shows the same descriptions; docs/fleet.md explains the "
           "strategy.", ""]
    for part in ("spec", "status"):
        out += [f"## SchemaMigrationSet {part}", "", "| Field | Type | Required | Default | Description |",
                "|---|---|---|---|---|"]
        _rows(schema["properties"][part], part, False, out)
        out.append("")
    out += ["## SchemaMigrationSet printer columns", "", "| Column | JSONPath | Shown |", "|---|---|---|"]
    out += [f"| {c['name'].upper()} | `{c['jsonPath']}` | {'-o wide' if c.get('priority') else 'always'} |"
            for c in r.columns]
    out += ["", "## SchemaMigrationSet labels and annotations", "",
            f"- `{set_api.APPROVE_ANNOTATION}` (on the set): status.approval.hash releases the databases after the "
            f"canary (strategy.approval Manual).",
            f"- `{set_api.SET_LABEL}` (on each child SchemaMigration): the set that owns it.",
            f"- `{set_api.DATABASE_ANNOTATION}`, `{set_api.REVISION_ANNOTATION}` (on each child): its Secret and "
            f"the set's template revision it carries.", ""]
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write", metavar="DIR", help=f"write DIR/{CRD_FILE} and DIR/{SET_CRD_FILE} instead of "
                                                       f"printing")
    parser.add_argument("--reference", metavar="FILE", help="also write the field reference (Markdown) to FILE")


def run(args: argparse.Namespace) -> int:
    for resource in RESOURCES:
        text = render(resource)
        if args.write:
            path = Path(args.write) / resource.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}", file=sys.stderr)
        else:
            sys.stdout.write(text if resource is RESOURCES[0] else "---\n" + text)
    if args.reference:
        Path(args.reference).write_text(reference())
        print(f"wrote {args.reference}", file=sys.stderr)
    return 0
