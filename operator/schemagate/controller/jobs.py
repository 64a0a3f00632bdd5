"""Render the migration Job (pure): same image as the operator, restricted Pod Security, no secrets inline.

The database URL reaches the container only as an env var from a secretKeyRef, and ENVSUB's variables
(spec.job.env, envFrom) as references or the literal values the spec holds (`jobenv`); migration files are
mounted read-only (a projected volume merges several ConfigMaps, whose key sets the loader has already
checked for clashes). The runner writes its JSON result to the termination message, which the operator
reads back from the pod's status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemagate.api import v1alpha1 as api
from schemagate.controller import decide as p
from schemagate.controller import jobenv
from schemagate.migrate import source

MIGRATIONS_DIR = "/migrations"
BACKUP_DIR = "/backup"
TERMINATION_LOG = "/dev/termination-log"
CONTAINER = "migrate"
RUNNER_UID = 65532  # "nonroot" in distroless images; any non-zero uid passes runAsNonRoot

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_MIGRATION = f"{api.GROUP}/migration"
LABEL_PLAN = f"{api.GROUP}/plan"
LABEL_GENERATION = f"{api.GROUP}/generation"
ANNOTATION_TARGET = f"{api.GROUP}/target-version"
ANNOTATION_RETRY = api.RETRY_ANNOTATION
MANAGED_BY = "schemagate"


@dataclass(frozen=True)
class JobRequest:
    """Everything the Job depends on; the same request always renders the same Job."""

    name: str  # the Job's name (deterministic, from plan.job_name)
    plan: str
    generation: int
    target: int | None  # None: up to the newest file
    lease_name: str
    lease_holder: str
    default_image: str
    retry: str | None = None
    command: str = "up"  # up | down (to target) | accept-checksum (of version target)
    backup_file: str | None = None  # pg_dump to BACKUP_DIR/<this> on spec.backup's claim first
    # ConfigMap sources: source.files_digest of the files the plan covers; the runner refuses other files
    expect_digest: str | None = None
    expect_rollback: tuple[int, ...] = ()  # down: the versions above the target the digest also covers
    service_account: str | None = None  # the installer's default when the spec names none (allow.Allowlist)


def plan_digest(files: Sequence[p.MigrationFile] | None, command: str, target: int | None,
                db: p.ObservedDatabase) -> tuple[str | None, tuple[int, ...]]:
    """(digest, rollback versions) pinning the Job to the files the plan hash covers; no digest when the
    operator did not read the files (image source) or the command runs no migration file (accept-checksum)."""
    if files is None or command not in ("up", "down"):
        return None, ()
    ordered = sorted(files, key=lambda m: m.version)
    rollback: tuple[int, ...] = ()
    if command == "down":
        assert target is not None  # a rollback always has an explicit target
        rollback = tuple(m.version for m in p.rollback_steps(ordered, db, target))
    return source.run_digest(((m.version, m.name, m.sha256) for m in ordered), target, rollback), rollback


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"apiVersion": api.API_VERSION, "kind": api.KIND, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _migrations_volume(spec: api.SchemaMigrationSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, init containers) that put the .sql files at MIGRATIONS_DIR."""
    if spec.source.config_maps:
        sources = [{"configMap": {"name": name}} for name in spec.source.config_maps]
        return [{"name": "migrations", "projected": {"sources": sources, "defaultMode": 0o444}}], []
    assert spec.source.image is not None
    copy = {
        "name": "copy-migrations",
        "image": spec.source.image.image,
        # The files come from another image; copy only the .sql files so nothing executable travels.
        # Paths are whole arguments, never spliced into the script, so nothing in them is shell syntax.
        "command": ["sh", "-c", 'cp -- "$0"/*.sql "$1"/', spec.source.image.path, "/work"],
        "volumeMounts": [{"name": "migrations", "mountPath": "/work"}],
        "securityContext": _container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return [{"name": "migrations", "emptyDir": {"sizeLimit": "256Mi"}}], [copy]


def _container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def command(spec: api.SchemaMigrationSpec, req: JobRequest, namespace: str) -> list[str]:
    args = ["schemagate", "migrate", "--dir", MIGRATIONS_DIR, "--table", spec.database.table,
            "--lock-timeout", spec.lock.lock_timeout, "--json", "--result-file", TERMINATION_LOG,
            "--lease-name", req.lease_name, "--lease-namespace", namespace,
            "--lease-holder", req.lease_holder, "--lease-duration", str(spec.lock.lease_duration_seconds)]
    if req.backup_file:
        args += ["--backup-file", f"{BACKUP_DIR}/{req.backup_file}"]
    if req.expect_digest and spec.source.config_maps:  # image sources: the operator never saw the files
        args += ["--expect-digest", req.expect_digest]
        if req.expect_rollback:
            args += ["--expect-rollback", ",".join(map(str, req.expect_rollback))]
    if req.command == "down":
        return [*args, "down-to", str(req.target)]
    if req.command == "accept-checksum":
        return [*args, "accept-checksum", str(req.target)]
    return args + (["up"] if req.target is None else ["up-to", str(req.target)])


def render_job(obj: dict[str, Any], spec: api.SchemaMigrationSpec, req: JobRequest) -> dict[str, Any]:
    meta = obj["metadata"]
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_MIGRATION: meta["name"], LABEL_PLAN: req.plan,
              LABEL_GENERATION: str(req.generation)}
    annotations = {ANNOTATION_TARGET: "latest" if req.target is None else str(req.target)}
    if req.retry:
        annotations[ANNOTATION_RETRY] = req.retry
    volumes, init = _migrations_volume(spec)
    volumes.append({"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}})
    mounts = [{"name": "migrations", "mountPath": MIGRATIONS_DIR, "readOnly": True},
              {"name": "tmp", "mountPath": "/tmp"}]
    if req.backup_file and spec.backup is not None:
        volumes.append({"name": "backup", "persistentVolumeClaim": {"claimName": spec.backup.claim_name}})
        mounts.append({"name": "backup", "mountPath": BACKUP_DIR})
    job = spec.job
    declared_env, env_from = jobenv.container_env(job)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": job.image or req.default_image,
        "command": command(spec, req, meta["namespace"]),
        "env": [
            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {
                "name": spec.database.secret_ref.name, "key": spec.database.secret_ref.key}}},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            *declared_env,  # ENVSUB's, under SCHEMAGATE_ENV_*: never a name the runner's process reads
        ],
        "volumeMounts": mounts,
        "securityContext": _container_security(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if env_from:
        container["envFrom"] = env_from
    if job.resources is not None:
        container["resources"] = job.resources.model_dump(by_alias=True, exclude_none=True)
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        # The runner's environment is what the Job spec says, not one variable per Service of the namespace
        # (a Service named like a variable the runner or ENVSUB reads would set it).
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUNNER_UID, "runAsGroup": RUNNER_UID,
                            "seccompProfile": {"type": "RuntimeDefault"},
                            # the backup claim must be writable by the runner's group; OnRootMismatch
                            # leaves a claim whose root already has that group alone instead of
                            # re-owning every file on it at each run
                            **({"fsGroup": RUNNER_UID, "fsGroupChangePolicy": "OnRootMismatch"}
                               if req.backup_file else {})},
        "containers": [container],
        "volumes": volumes,
    }
    if init:
        pod["initContainers"] = init
    account = job.service_account_name or req.service_account
    if account:
        pod["serviceAccountName"] = account
    if job.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in job.tolerations]
    if job.node_selector:
        pod["nodeSelector"] = dict(job.node_selector)
    job_spec: dict[str, Any] = {
        "backoffLimit": job.backoff_limit,
        "activeDeadlineSeconds": job.active_deadline_seconds,
        "template": {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}, "spec": pod},
    }
    if job.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = job.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": req.name, "namespace": meta["namespace"], "labels": labels,
                     "annotations": annotations, "ownerReferences": [_owner(obj)]},
        "spec": job_spec,
    }
