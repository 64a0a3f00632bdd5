"""The ENVSUB variables a SchemaMigration declares (spec.job.env, envFrom), pure: as the Job passes them,
and as the operator's plan can check them.

The Job passes a declared NAME as SCHEMAGATE_ENV_NAME (an envFrom's keys under SCHEMAGATE_ENV_ + its
prefix), never as NAME: whoever writes a SchemaMigration may choose values for ENVSUB, not the runner's
process environment (PYTHONPATH, LD_PRELOAD, KUBERNETES_SERVICE_HOST, a proxy would change what runs with
the Job's token). SCHEMAGATE_ENVSUB_NAMES lists what was declared, always, even empty: the runner reads
ENVSUB from those names only, so a file that refers to another one is refused, naming it.
SCHEMAGATE_ENVSUB_REDACT lists those whose values come from Secrets, which the runner masks in its messages.

The operator never reads the Secrets and ConfigMaps they name (the kubelet does, for the pod): its plan
checks the files with the literal values and records the others as unchecked (envsub.DeclaredEnv).
"""

from __future__ import annotations

from typing import Any

from schemagate.api import v1alpha1 as api
from schemagate.migrate import envsub


def declared(job: api.JobSpec) -> envsub.Declared:
    """Every name ENVSUB may read: each env entry's name, each envFrom's prefix."""
    return envsub.Declared(frozenset(e.name for e in job.env or []),
                           tuple(dict.fromkeys(f.prefix for f in job.env_from or [])))


def _ref(ref: api.KeyRef | api.ObjectRef) -> dict[str, Any]:
    return ref.model_dump(by_alias=True, exclude_none=True)


def container_env(job: api.JobSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(env, envFrom) of the runner container for the declared variables: references and the literal
    values the SchemaMigration holds, nothing the operator read."""
    env: list[dict[str, Any]] = [{"name": envsub.NAMES_VARIABLE, "value": ",".join(declared(job).entries())}]
    secret = envsub.Declared(
        frozenset(v.name for v in job.env or [] if v.value_from is not None and v.value_from.secret_key_ref),
        tuple(dict.fromkeys(f.prefix for f in job.env_from or [] if f.secret_ref is not None)))
    if secret.entries():
        env.append({"name": envsub.REDACT_VARIABLE, "value": ",".join(secret.entries())})
    for var in job.env or []:
        entry: dict[str, Any] = {"name": envsub.VALUE_PREFIX + var.name}
        if var.value_from is not None:
            source = var.value_from
            if source.secret_key_ref is not None:
                entry["valueFrom"] = {"secretKeyRef": _ref(source.secret_key_ref)}
            elif source.config_map_key_ref is not None:
                entry["valueFrom"] = {"configMapKeyRef": _ref(source.config_map_key_ref)}
        else:
            entry["value"] = var.value or ""
        env.append(entry)
    env_from: list[dict[str, Any]] = []
    for src in job.env_from or []:
        item: dict[str, Any] = {"prefix": envsub.VALUE_PREFIX + src.prefix}
        if src.config_map_ref is not None:
            item["configMapRef"] = _ref(src.config_map_ref)
        elif src.secret_ref is not None:
            item["secretRef"] = _ref(src.secret_ref)
        env_from.append(item)
    return env, env_from


def plan_environment(job: api.JobSpec) -> envsub.DeclaredEnv:
    """What the operator's plan parses the files with: the literal values; names from valueFrom and envFrom
    are declared but unknown (read as "", recorded as unchecked)."""
    literal = {v.name: v.value or "" for v in job.env or [] if v.value_from is None}
    unknown = envsub.Declared(frozenset(v.name for v in job.env or [] if v.value_from is not None),
                              tuple(dict.fromkeys(f.prefix for f in job.env_from or [])))
    return envsub.DeclaredEnv(literal, declared(job), unknown)
