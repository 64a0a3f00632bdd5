"""One reconcile of one SchemaMigrationSet: read the set, its children and the selected Secrets' names, let
`fleet.decide` say what to do, create/patch the children, gate the Deployments, write status.

The set never reads a database URL: its children do. Secrets are listed as PartialObjectMetadata (names
and labels only), so no Secret value even reaches the operator's memory for the set's sake.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from schemagate.api import conditions as c
from schemagate.api import migrationset as set_api
from schemagate.api import reasons
from schemagate.api import v1alpha1 as api
from schemagate.controller import events, fleet, gate, gate_reconcile, mergepatch, objects
from schemagate.controller import status as st
from schemagate.controller.config import Options
from schemagate.controller.gate import label_selector
from schemagate.controller.observe import Blocked
from schemagate.kube import Clients

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


def selected_secrets(k: Clients, namespace: str, spec: set_api.SchemaMigrationSetSpec) -> list[fleet.Secret]:
    if spec.databases.selector is None:
        return []
    selector = label_selector(spec.databases.selector.model_dump(by_alias=True, exclude_none=True))
    try:
        resp: Any = k.core.list_namespaced_secret(namespace, label_selector=selector, _preload_content=False,
                                             _headers={"Accept": METADATA_ONLY})
    except ApiException as e:
        if e.status == 403:
            raise Blocked(reasons.SECRETS_NOT_LISTABLE,
                          f"the operator may not list Secrets in namespace {namespace} to find "
                          f"spec.databases.selector's: install the chart with rbac.listSecrets=true (it reads their "
                          f"names and labels only), or name them in spec.databases.secrets") from None
        raise
    # _preload_content=False: the raw response (PartialObjectMetadataList), not the V1SecretList it is typed as
    items = json.loads(resp.data).get("items") or []
    return [fleet.Secret(str(m["metadata"]["name"]), dict(m["metadata"].get("labels") or {})) for m in items]


def _children(k: Clients, namespace: str, name: str, *, uid: str, spec: set_api.SchemaMigrationSetSpec,
              selected: list[fleet.Secret]) -> list[dict[str, Any]]:
    """SchemaMigrations this set owns, and those bearing the name a database's child would have."""
    found: Any = k.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL)
    names = {fleet.child_name(name, s.name) for s in selected} | {
        fleet.child_name(name, s) for s in spec.databases.secrets or []}
    out = []
    for item in found.get("items") or []:
        meta = item.get("metadata") or {}
        owned = any(r.get("uid") == uid for r in meta.get("ownerReferences") or [])
        if owned or meta.get("name") in names:
            out.append(item)
    return out


def _others_gating(k: Clients, namespace: str, name: str) -> dict[tuple[str, str], list[str]]:
    """(kind, workload) → the SchemaMigrations and other SchemaMigrationSets of the namespace that gate it
    too."""
    others = gate_reconcile.also_gating(k, namespace, "")  # no SchemaMigration is named ""
    found: Any = k.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, namespace, set_api.PLURAL)
    return gate.gated_by(found.get("items") or [], besides=name, label="{} (SchemaMigrationSet)", into=others)


def _gate(k: Clients, namespace: str, name: str, *, spec: set_api.SchemaMigrationSetSpec, old: dict[str, Any],
          new: dict[str, Any], children: list[dict[str, Any]], names: list[str]) -> gate_reconcile.Result | None:
    """The set's gate: a pod opens once the lowest version of the set's databases is its required one."""
    def schema() -> gate.Schema:
        current, unknown = fleet.gate_view(new, children, names)
        ready = c.get(new.get("conditions"), c.READY) or {}
        stalled = c.get(new.get("conditions"), c.STALLED) or {}
        return gate.Schema(
            migration=f"{name} (SchemaMigrationSet: the lowest version of its {len(names)} databases)",
            current=current, target=new.get("targetVersion"),
            stalled=str(stalled.get("message")) if stalled.get("status") == c.TRUE else None,
            progress=str(ready.get("message") or "") or None if ready.get("status") != c.TRUE else None,
            unavailable=unknown)
    workloads = gate_reconcile.named(spec.rollout_gate)
    return gate_reconcile.gate_workloads(k, namespace, name, workloads=workloads,
                                         old=gate_reconcile.old_entries({"status": old}),
                                         others=lambda: _others_gating(k, namespace, name), schema=schema)


def _apply(k: Clients, namespace: str, outcome: fleet.Outcome) -> list[str]:
    """Create and patch the children; the apiserver's refusals, as messages (admission, quota, RBAC)."""
    refused: list[str] = []
    for body in outcome.create:
        child = body["metadata"]["name"]
        try:
            k.custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)
            log.info("%s/%s: created SchemaMigration for database %s", namespace, child,
                     body["metadata"]["annotations"][set_api.DATABASE_ANNOTATION])
        except ApiException as e:
            if e.status != 409:  # 409: created meanwhile (a restart); the next round sees it
                refused.append(f"SchemaMigration {child}: {objects.api_message(e)}")
    for child, patch in outcome.update + outcome.orphan:
        try:
            k.custom.patch_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, child, patch,
                                                    _content_type=MERGE_PATCH)
            log.info("%s/%s: %s", namespace, child, "let go (its database left the set)"
                     if (child, patch) in outcome.orphan else "updated to the set's template")
        except ApiException as e:
            if e.status != 404:
                refused.append(f"SchemaMigration {child}: {objects.api_message(e)}")
    return refused


def reconcile(k: Clients, namespace: str, name: str, opts: Options) -> None:
    """Bring one SchemaMigrationSet's children, gate and status in line with the world."""
    obj = objects.get(k, set_api.PLURAL, namespace, name)
    if obj is None:
        return
    meta = obj["metadata"]
    generation = int(meta.get("generation") or 1)
    old: dict[str, Any] = obj.get("status") or {}
    gate_result: gate_reconcile.Result | None = None
    try:
        try:
            spec = set_api.SchemaMigrationSetSpec.model_validate(obj.get("spec") or {})
        except ValidationError as e:
            raise Blocked(reasons.INVALID_SPEC, objects.spec_error(e)) from None
        if opts.act_namespaces and namespace not in opts.act_namespaces:
            raise Blocked(reasons.NAMESPACE_NOT_ALLOWED, f"schemagate does not act in namespace {namespace}: an "
                                                         f"admin adds it to the chart's watch.namespaces; nothing "
                                                         f"was created")
        selected = selected_secrets(k, namespace, spec)
        children = _children(k, namespace, name, uid=meta["uid"], spec=spec, selected=selected)
        outcome = fleet.decide(fleet.ObservedSet(
            name=name, namespace=namespace, uid=meta["uid"], generation=generation, spec=spec,
            annotations=meta.get("annotations") or {}, children=children, selected=selected, old_status=old))
        new = outcome.status
        refused = _apply(k, namespace, outcome)
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            new["conditions"] = c.apply(old.get("conditions"), c.stalled(reasons.CHILD_REJECTED, refused[0] + more),
                                        generation)
        gate_result = _gate(k, namespace, name, spec=spec, old=old, new=new, children=children,
                            names=fleet.database_names(spec, selected))
        new["rolloutGate"] = gate_result.status if gate_result else old.get("rolloutGate")
    except Blocked as b:
        new = {"phase": "Failed" if b.reason != reasons.NAMESPACE_NOT_ALLOWED else old.get("phase"),
               "observedGeneration": generation,
               "conditions": c.apply(old.get("conditions"), c.stalled(b.reason, b.message), generation)}
    new = mergepatch.replacing(old, new)  # cleared fields go out as null in the merge patch
    objects.write_status(k, set_api.PLURAL, obj, new)
    event = st.stalled_event(old, new)
    if event:
        events.post(k, events.involved(set_api.API_VERSION, set_api.KIND, meta), [event])
    gate_reconcile.post_events(k, gate_result)
