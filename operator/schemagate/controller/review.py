"""What an approver reviews: the statements status.plan's hash covers, recomputed from the files (pure).

Input is what `kubectl get -o json` prints for the SchemaMigration, alone or in a List with its
ConfigMaps: `kubectl get smig/NAME cm/A cm/B -o json | schemagate migrate plan --review -`. Each step of
status.plan must be a file given (same version, name and sha256), and the plan hash recomputed with
approval.plan_hash from those files and the object (generation, retry annotation, backup claim, from/to
versions) must equal status.plan.hash. Only then are the statements printed: they are exactly what
`schemagate.io/approve=<hash>` lets the Job run, because the Job is pinned by --expect-digest to the same
files (the digest is printed too, and is in the Job's arguments once it exists).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from schemagate.api import reasons
from schemagate.api import v1alpha1 as api
from schemagate.controller import approval
from schemagate.controller import decide as p
from schemagate.migrate import plan as mplan
from schemagate.migrate import preview, source
from schemagate.migrate.errors import MigrateError


def _bad(message: str) -> MigrateError:
    return MigrateError(reasons.INVALID_ARGUMENTS, f"--review: {message}")


def parse_input(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the SchemaMigration, the ConfigMaps) of a kubectl JSON document (one object or a List)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise _bad(f"not JSON (line {e.lineno}: {e.msg}): give it the output of `kubectl get smig/NAME -o json`"
                   ) from None
    items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
    if not isinstance(items, list):
        raise _bad("a List without items")
    smigs = [o for o in items if isinstance(o, dict) and o.get("kind") == api.KIND]
    cms = [o for o in items if isinstance(o, dict) and o.get("kind") == "ConfigMap"]
    if len(smigs) != 1:
        raise _bad(f"expected exactly one {api.KIND}, found {len(smigs)}")
    return smigs[0], cms


def merge_config_maps(names: list[str], cms: list[dict[str, Any]], namespace: str) -> dict[str, str]:
    """The migration files of spec.source.configMaps, merged as the operator merges them."""
    by_name = {(c.get("metadata") or {}).get("name"): c for c in cms}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise _bad(f"ConfigMap {namespace}/{missing[0]} (in spec.source.configMaps) is not in the input: "
                   f"add cm/{missing[0]} to the kubectl get")
    merged: dict[str, str] = {}
    origin: dict[str, str] = {}
    for n in names:
        cm = by_name[n]
        binary = sorted(k for k in (cm.get("binaryData") or {}) if k.endswith(".sql"))
        if binary:
            raise _bad(f"file {binary[0]} in ConfigMap {namespace}/{n} is not UTF-8 text (it is under binaryData)")
        for key, text in (cm.get("data") or {}).items():
            if key in merged:
                raise _bad(f"file {key} is in both ConfigMap {namespace}/{origin[key]} and ConfigMap {namespace}/{n}")
            merged[key], origin[key] = text, n
    return merged


def review(smig: Mapping[str, Any], migrations: list[source.Migration]) -> preview.Preview:
    """Pure: the statements status.plan covers, or MigrateError saying why these files are not that plan."""
    meta = smig.get("metadata") or {}
    name, namespace = meta.get("name", "?"), meta.get("namespace", "default")
    try:
        spec = api.SchemaMigrationSpec.model_validate(smig.get("spec") or {})
    except ValidationError as e:
        raise _bad(f"smig/{name}: invalid spec: {e.errors()[0]['msg']}") from None
    if spec.source.image is not None:
        raise _bad(f"smig/{name} takes its migrations from image {spec.source.image.image}: the operator never "
                   "reads them, so status.plan lists no files; review the image's files with "
                   "`schemagate migrate plan --dir DIR up-to V` against the database instead")
    status = smig.get("status") or {}
    shown = status.get("plan")
    if not shown or not shown.get("hash"):
        raise _bad(f"smig/{name} has no status.plan: nothing is planned (up to date, or not reconciled yet)")
    by_version = {m.version: m for m in migrations}
    planned: list[source.Migration] = []
    for step in shown.get("migrations") or []:
        m = by_version.get(step.get("version"))
        if m is None or m.file != step.get("file") or m.sha256 != step.get("sha256"):
            found = "no such file" if m is None else f"{m.file}, sha256 {m.sha256[:12]}…"
            raise MigrateError(reasons.SOURCE_CHANGED,
                               f"status.plan of smig/{name} runs version {step.get('version')} "
                               f"({step.get('file')}, sha256 {str(step.get('sha256'))[:12]}…) but the files given "
                               f"have {found}: these are not the files that plan was made from")
        planned.append(m)
    direction: mplan.Direction = "down" if shown.get("direction") == "down" else "up"
    before, target = int(shown.get("fromVersion") or 0), shown.get("toVersion")
    inputs = p.Inputs(name=name, namespace=namespace, generation=int(meta.get("generation") or 1), target=target,
                      migrations=tuple(p.migration_file(m) for m in migrations), db=p.ObservedDatabase(before),
                      retry=(meta.get("annotations") or {}).get(api.RETRY_ANNOTATION))
    recomputed = approval.plan_hash(inputs, target, [p.migration_file(m) for m in planned],
                                    spec.backup.claim_name if spec.backup else None)
    if recomputed != shown["hash"]:
        why = ("its spec changed since (metadata.generation "
               f"{meta.get('generation')}, status.observedGeneration {status.get('observedGeneration')}): wait for "
               "the operator to plan again" if status.get("observedGeneration") != meta.get("generation") else
               "the object changed since the plan was computed (retry annotation, backup claim): run this again")
        raise MigrateError(reasons.SOURCE_CHANGED, f"status.plan.hash of smig/{name} is {shown['hash']} but these "
                                                   f"files and the object give {recomputed}: {why}")
    steps = [mplan.Step(m, direction) for m in planned]
    verb = "down-to" if direction == "down" else "up-to"
    after = target if target is not None else (planned[-1].version if planned else before)
    return preview.Preview(verb, tuple(steps), before, after, preview.digest(migrations, verb, target, steps),
                           plan_hash=recomputed,
                           title=f"smig/{name} in {namespace}, approval {shown.get('approval') or 'Automatic'}")


def preview_from_kubectl(text: str, directory: str, env: Mapping[str, str]) -> preview.Preview:
    """The edge: files from the ConfigMaps in the input, else from `directory`."""
    smig, cms = parse_input(text)
    names = list(((smig.get("spec") or {}).get("source") or {}).get("configMaps") or [])
    namespace = (smig.get("metadata") or {}).get("namespace", "default")
    files = merge_config_maps(names, cms, namespace) if cms else source.read_dir(directory)
    return review(smig, source.load_files(files, env))
