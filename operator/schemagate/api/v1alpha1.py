"""SchemaMigration v1alpha1: the pydantic models are the single source of the CRD's schema.

Field descriptions become the CRD's OpenAPI descriptions (and `kubectl explain`). CEL rules live beside
the fields they guard (`x-kubernetes-validations`) so the apiserver rejects nonsense at admission.
Unknown fields are ignored rather than rejected, so an older operator keeps reading newer objects.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from schemagate.api.shared import DEFAULT_TABLE, PG_DURATION

GROUP = "schemagate.io"
VERSION = "v1alpha1"
KIND = "SchemaMigration"
PLURAL = "schemamigrations"
SINGULAR = "schemamigration"
SHORT_NAMES = ["smig"]
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_SECRET_KEY = "url"
HISTORY_LIMIT = 10
# The name is the value of the schemagate.io/migration label on its Jobs, and a label value has at most 63
# characters: a longer name could never list or create its Jobs.
NAME_MAX = 63
NAME_RULE = {"rule": f"size(self.metadata.name) <= {NAME_MAX}",
             "message": f"metadata.name must be at most {NAME_MAX} characters: it is the value of the "
                        f"{GROUP}/migration label on the migration Jobs"}

# Annotation whose every new value asks for one more Job for an unchanged plan (no hot retry loop).
RETRY_ANNOTATION = f"{GROUP}/retry"
# Manual approval: the value is the hash of the plan shown in status.plan.hash; it approves exactly that plan.
APPROVE_ANNOTATION = f"{GROUP}/approve"
# Drift: "<version>:<sha256>" accepts that content of an applied migration as its new checksum.
ACCEPT_CHECKSUM_ANNOTATION = f"{GROUP}/accept-checksum"

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_SQL_IDENT = r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$"
_PG_DURATION = f"^{PG_DURATION}$"
_TARGET = re.compile(r"^(latest|[0-9]+)$")


def _cel(rule: str, message: str) -> dict[str, Any]:
    return {"rule": rule, "message": message}


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class SecretKeyRef(_Model):
    """Where the database URL lives: one key of a Secret in the SchemaMigration's namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN,
                               description="Name of the Secret.")]
    key: Annotated[str, Field(min_length=1, max_length=253,
                              description="Key in the Secret whose value is a libpq URL or conninfo "
                                          "(postgres://user:password@host:5432/db).")] = DEFAULT_SECRET_KEY


class DatabaseSpec(_Model):
    """The PostgreSQL database to migrate."""

    secret_ref: Annotated[SecretKeyRef, Field(description="Secret key holding the database URL. The URL reaches "
                                                          "the migration Job only through secretKeyRef.")]
    table: Annotated[str, Field(pattern=_SQL_IDENT,
                                description="goose version table, optionally schema-qualified.")] = DEFAULT_TABLE


class ImageSource(_Model):
    """Migrations baked into an image: an init container copies `path` into the Job's working volume."""

    image: Annotated[str, Field(min_length=1, description="Image holding the migration files; its init "
                                                          "container runs sh, so it must be one the installer "
                                                          "allowed (--allow-image).")]
    path: Annotated[str, Field(pattern=r"^/.*", description="Absolute directory of the .sql files in the image.")] = (
        "/migrations")


class SourceSpec(_Model):
    """Where the goose .sql files come from: ConfigMaps (merged) or an image."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("has(self.configMaps) != has(self.image)", "source needs exactly one of configMaps or image"),
    ]})

    config_maps: Annotated[list[Annotated[str, Field(max_length=253, pattern=_DNS_SUBDOMAIN)]] | None, Field(
        default=None, min_length=1, max_length=32,
        description="ConfigMaps in this namespace whose keys are goose .sql files. Several are merged, so a "
                    "schema larger than one ConfigMap (1 MiB) fits; a file name in two of them is an error.",
        json_schema_extra={"x-kubernetes-list-type": "set"})]
    image: Annotated[ImageSource | None, Field(default=None, description="Migrations shipped in an image.")]


class Toleration(_Model):
    """A core/v1 Toleration for the migration pod."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


_Quantity = Annotated[int | str, Field(json_schema_extra={"x-kubernetes-int-or-string": True,
                                                          "pattern": r"^[0-9.]+[A-Za-z]*$"})]


class Resources(_Model):
    """Compute resources of the migration container (core/v1 ResourceRequirements)."""

    limits: dict[str, _Quantity] | None = None
    requests: dict[str, _Quantity] | None = None


# ENVSUB variables a SchemaMigration declares (spec.job.env, envFrom). The names ENVSUB reads: a letter,
# then letters, digits and "_" (mfridman/interpolate's identifier, ASCII as environment names are).
_ENV_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
_CONFIG_KEY = r"^[-._a-zA-Z0-9]+$"
# The runner's own names: the connection (DATABASE_URL, libpq's PG*) and its settings (SCHEMAGATE_*). The
# runner never substitutes them whatever is declared; refusing them here says so where the name is written.
RUNNER_OWNED = "DATABASE_URL, PG* and SCHEMAGATE_* belong to the runner (the connection and its settings)"
PREFIX_REFUSED = ("a key could make DATABASE_URL or a PG* or SCHEMAGATE_* name, which belong to the runner "
                  "(the connection and its settings); use another prefix")
_OWNED_NAME = "!(self == 'DATABASE_URL' || self.startsWith('PG') || self.startsWith('SCHEMAGATE_'))"
# A prefix from which a key could make an owned name ("P" + "GHOST", "DATABASE_" + "URL").
_OWNED_PREFIX = ("!(self.startsWith('PG') || 'PG'.startsWith(self) || self.startsWith('SCHEMAGATE_') || "
                 "'SCHEMAGATE_'.startsWith(self) || 'DATABASE_URL'.startsWith(self))")


def owned_name(name: str) -> bool:
    """The Python side of _OWNED_NAME (the operator refuses what an older CRD let through)."""
    return name == "DATABASE_URL" or name.startswith(("PG", "SCHEMAGATE_"))


def owned_prefix(prefix: str) -> bool:
    return (prefix.startswith(("PG", "SCHEMAGATE_")) or "PG".startswith(prefix)
            or "SCHEMAGATE_".startswith(prefix) or "DATABASE_URL".startswith(prefix))


class KeyRef(_Model):
    """One key of a Secret or ConfigMap in the SchemaMigration's namespace (core/v1 *KeySelector)."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN,
                               description="Name of the Secret or ConfigMap.")]
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=_CONFIG_KEY, description="The key.")]
    optional: Annotated[bool | None, Field(description="The Job starts without the variable when the object "
                                                       "or key is absent (ENVSUB then reads it as unset).")] = None


class EnvVarSource(_Model):
    """Where a variable's value comes from: only a Secret's or a ConfigMap's key (the kubelet reads it; the
    operator never does, and the Job spec holds only the reference)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("has(self.secretKeyRef) != has(self.configMapKeyRef)",
             "valueFrom needs exactly one of secretKeyRef or configMapKeyRef"),
    ]})

    secret_key_ref: Annotated[KeyRef | None, Field(description="A key of a Secret.")] = None
    config_map_key_ref: Annotated[KeyRef | None, Field(description="A key of a ConfigMap.")] = None

    @model_validator(mode="after")
    def _one(self) -> EnvVarSource:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("valueFrom needs exactly one of secretKeyRef or configMapKeyRef")
        return self


class EnvVar(_Model):
    """A variable ENVSUB may substitute (-- +goose ENVSUB ON): a literal value or a Secret's or ConfigMap's key."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("!(has(self.value) && has(self.valueFrom))", "env: value and valueFrom are mutually exclusive"),
    ]})

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=_ENV_NAME, description=(
        "Name ENVSUB reads (${NAME}). Not DATABASE_URL, PG* or SCHEMAGATE_*: they belong to the runner."),
        json_schema_extra={"x-kubernetes-validations": [
            _cel(_OWNED_NAME, f"spec.job.env[].name: {RUNNER_OWNED}; use another name")]})]
    value: Annotated[str | None, Field(max_length=32768, description=(
        "The value as written; it is in the Job spec and the operator's plan checks the files with it. "
        "Anything secret goes in valueFrom.secretKeyRef instead."))] = None
    value_from: Annotated[EnvVarSource | None, Field(description=(
        "A Secret's or ConfigMap's key; the operator's plan cannot check the statements it makes "
        "(status.plan.migrations[].envsubUnchecked), the Job does."))] = None

    @field_validator("name")
    @classmethod
    def _not_owned(cls, name: str) -> str:
        if owned_name(name):
            raise ValueError(f"spec.job.env[].name {name!r}: {RUNNER_OWNED}; use another name")
        return name

    @model_validator(mode="after")
    def _exclusive(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"env {self.name}: value and valueFrom are mutually exclusive")
        return self


class ObjectRef(_Model):
    """A whole Secret or ConfigMap in the SchemaMigration's namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN,
                               description="Name of the Secret or ConfigMap.")]
    optional: Annotated[bool | None, Field(description="The Job starts without these variables when the "
                                                       "object is absent.")] = None


class EnvFromSource(_Model):
    """Every key of a Secret or ConfigMap as a variable named prefix + key."""

    # The operator never reads the object (the kubelet does), so it cannot know the keys: what is declared
    # is every name starting with the prefix, which is why the prefix is required.

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("has(self.configMapRef) != has(self.secretRef)", "envFrom needs exactly one of configMapRef or secretRef"),
    ]})

    prefix: Annotated[str, Field(min_length=1, max_length=64, pattern=_ENV_NAME, description=(
        "Prepended to every key; ENVSUB may read any name starting with it (${PREFIX_KEY}). Required, and "
        "none from which a key could make DATABASE_URL, PG* or SCHEMAGATE_*."),
        json_schema_extra={"x-kubernetes-validations": [
            _cel(_OWNED_PREFIX, f"spec.job.envFrom[].prefix: {PREFIX_REFUSED}")]})]
    config_map_ref: Annotated[ObjectRef | None, Field(description="A ConfigMap.")] = None
    secret_ref: Annotated[ObjectRef | None, Field(description="A Secret.")] = None

    @field_validator("prefix")
    @classmethod
    def _not_owned(cls, prefix: str) -> str:
        if owned_prefix(prefix):
            raise ValueError(f"spec.job.envFrom[].prefix {prefix!r}: {PREFIX_REFUSED}")
        return prefix

    @model_validator(mode="after")
    def _one(self) -> EnvFromSource:
        if (self.config_map_ref is None) == (self.secret_ref is None):
            raise ValueError("envFrom needs exactly one of configMapRef or secretRef")
        return self


class JobSpec(_Model):
    """How the migration Job runs."""

    image: Annotated[str | None, Field(description="Runner image (schemagate). Defaults to the operator's "
                                                   "--job-image; any other must be one the installer allowed "
                                                   "(--allow-image), else Stalled ImageNotAllowed.")] = None
    resources: Annotated[Resources | None, Field(description="Resources of the migration container.")] = None
    service_account_name: Annotated[str | None, Field(
        pattern=_DNS_SUBDOMAIN, description="ServiceAccount of the migration pod; it needs get/create/update "
                                            "on coordination.k8s.io leases. Defaults to the operator's "
                                            "--job-service-account (else the namespace's default); any other "
                                            "must be allowed (--allow-service-account), else Stalled "
                                            "ServiceAccountNotAllowed.")
    ] = None
    backoff_limit: Annotated[int, Field(ge=0, le=10, description="Pod retries inside one Job. A failed Job "
                                                               "is not retried by the operator.")] = 0
    active_deadline_seconds: Annotated[int, Field(ge=10, le=86400, description="Upper bound of one run.")] = 3600
    ttl_seconds_after_finished: Annotated[int | None, Field(
        ge=0, description="Delete finished Jobs after this long; the outcome stays in status.")] = 86400
    tolerations: Annotated[list[Toleration] | None, Field(description="Tolerations of the migration pod.")] = None
    node_selector: Annotated[dict[str, str] | None, Field(description="nodeSelector of the migration pod.")] = None
    env: Annotated[list[EnvVar] | None, Field(
        default=None, max_length=64,
        description="Variables ENVSUB may substitute, and only these: a file referring to any other is refused "
                    "(InvalidMigrations). The Job passes each as SCHEMAGATE_ENV_<name> (never as the name itself, "
                    "so none can change how the runner runs).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})]
    env_from: Annotated[list[EnvFromSource] | None, Field(
        default=None, max_length=16,
        description="Secrets and ConfigMaps whose every key ENVSUB may substitute as PREFIX + key.")]

    @model_validator(mode="after")
    def _env_names_once(self) -> JobSpec:
        # The CRD's list-map refuses it at admission; this says so for an object an older CRD let through.
        names = [e.name for e in self.env or []]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"spec.job.env names {', '.join(twice)} more than once")
        return self


class LockSpec(_Model):
    """Serialisation: a Lease per database between Jobs, plus Postgres lock_timeout while migrating."""

    lease_duration_seconds: Annotated[int, Field(ge=5, le=3600, description="Lease duration; a holder that "
                                                                          "vanished is taken over after it.")] = 15
    lock_timeout: Annotated[str, Field(pattern=_PG_DURATION, description="Postgres lock_timeout while migrating "
                                                                         "(e.g. 10s, 500ms).")] = "10s"


class BackupSpec(_Model):
    """A pg_dump (custom format) of the database before every run, onto a PersistentVolumeClaim."""

    claim_name: Annotated[str, Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN,
                                     description="PersistentVolumeClaim in this namespace the dump is written to "
                                                 "(as <job>.dump); it must carry the label schemagate.io/backup="
                                                 "true (the operator's --backup-claim-label). The Job fails, "
                                                 "applying nothing, if the dump fails.")]


class LintSpec(_Model):
    """Lint of the files a plan would run — the writing rules (require-down, require-idempotent-ddl,
    separate-schema-and-data) and squawk — findings go to status.plan.lint and Events."""

    fail_on: Annotated[Literal["none", "warning", "error"], Field(
        description="Lowest finding level that blocks the plan (reason LintFailed): none (report only), "
                    "warning (any finding), error (squawk's syntax errors, unreadable +schemagate "
                    "annotations).")] = "none"
    exclude: Annotated[list[Annotated[str, Field(pattern=r"^[a-z0-9-]+$")]] | None, Field(
        default=None, max_length=64, description="Rules to ignore: the writing rules (require-down, "
                                                  "require-idempotent-ddl, separate-schema-and-data) and squawk's, "
                                                  "e.g. ban-drop-column. require-lock-timeout is always ignored: "
                                                  "the Job sets it. A file ignores writing rules for itself with "
                                                  "a `-- +schemagate NoLint RULE` line.")]


class RolloutGateSpec(_Model):
    """Deployments and StatefulSets whose new pods become Ready only once the database has the schema they
    need.

    Their pod template carries `readinessGates: [{conditionType: schemagate.io/schema-ready}]` and may
    carry the annotation schemagate.io/required-schema-version (absent: this SchemaMigration's target).
    Taking a workload out (or deleting the SchemaMigration) opens the gate of its held pods, with a Warning
    Event RolloutGateRemoved on it.
    """

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("(has(self.deployments) ? size(self.deployments) : 0) + "
             "(has(self.statefulSets) ? size(self.statefulSets) : 0) > 0",
             "rolloutGate names at least one Deployment or StatefulSet")]})

    deployments: Annotated[list[Annotated[str, Field(max_length=253, pattern=_DNS_SUBDOMAIN)]], Field(
        default_factory=list, max_length=16,
        description="Deployments in this namespace whose pods' readiness gate this SchemaMigration decides.",
        json_schema_extra={"x-kubernetes-list-type": "set"})]
    stateful_sets: Annotated[list[Annotated[str, Field(max_length=253, pattern=_DNS_SUBDOMAIN)]], Field(
        default_factory=list, max_length=16,
        description="StatefulSets in this namespace whose pods' readiness gate this SchemaMigration decides "
                    "(updateStrategy RollingUpdate: a held pod stops the rollout, as a Deployment's does).",
        json_schema_extra={"x-kubernetes-list-type": "set"})]

    @model_validator(mode="after")
    def _names_one(self) -> RolloutGateSpec:
        if not self.deployments and not self.stateful_sets:
            raise ValueError("rolloutGate names at least one Deployment or StatefulSet")
        return self


def target_version_field(description: str) -> Any:
    """The field of a targetVersion ('latest' or a version number, as int or string), which the apiserver
    checks too: a SchemaMigration's and a SchemaMigrationSet's template's."""
    return Field(description=description, json_schema_extra={
        "x-kubernetes-int-or-string": True, "x-kubernetes-validations": [
            _cel("type(self) == int ? self >= 0 : (self == 'latest' || self.matches('^[0-9]+$'))",
                 "targetVersion must be 'latest' or a non-negative version number")]})


class MigrationSettings(_Model):
    """How one database is migrated: a SchemaMigration's spec without database, source and rolloutGate, which
    is also a SchemaMigrationSet's spec.template (its children's specs are made of it)."""

    target_version: Annotated[int | str, target_version_field(
        "'latest' or a version number; the database is migrated up to it.")] = "latest"
    job: Annotated[JobSpec, Field(default_factory=JobSpec)]
    lock: Annotated[LockSpec, Field(default_factory=LockSpec)]
    approval: Annotated[Literal["Automatic", "Manual"], Field(
        description="Manual: the plan waits in phase AwaitingApproval until the annotation "
                    "schemagate.io/approve is set to its status.plan.hash.")] = "Automatic"
    allow_downgrade: Annotated[bool, Field(
        description="A targetVersion below the database's version runs the Down migrations down to it; "
                    "otherwise it is refused (DowngradeNotAllowed).")] = False
    backup: Annotated[BackupSpec | None, Field(description="pg_dump before applying (off when absent).")] = None
    lint: Annotated[LintSpec, Field(default_factory=LintSpec)]

    def target(self) -> int | None:
        """The numeric target, or None for latest. Raises ValueError for anything else."""
        text = str(self.target_version).strip()
        if not _TARGET.match(text):
            raise ValueError(f"targetVersion {self.target_version!r} must be 'latest' or a version number")
        return None if text == "latest" else int(text)


class SchemaMigrationSpec(MigrationSettings):
    """Desired state: the database, the migrations, the version to reach."""

    database: DatabaseSpec
    source: SourceSpec
    rollout_gate: Annotated[RolloutGateSpec | None, Field(
        description="Gate these Deployments' and StatefulSets' rollouts on the schema (off when absent).")] = None


class Condition(_Model):
    """A Kubernetes-convention condition (metav1.Condition)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str


Conditions = Annotated[list[Condition] | None, Field(
    default=None, description="Ready, Reconciling, Stalled (kstatus), each with reason and observedGeneration.",
    json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})]
"""status.conditions of both kinds."""


class RunRecord(_Model):
    """One migration Job and what it did."""

    job: Annotated[str, Field(description="Name of the Job (it may since have been deleted by its TTL).")]
    generation: Annotated[int | None, Field(description="metadata.generation the Job was created for.")] = None
    plan: Annotated[str | None, Field(description="Hash of target, file checksums and retry token.")] = None
    retry: Annotated[str | None, Field(description="Value of the retry annotation the Job was created for.")] = None
    target_version: Annotated[int | None, Field(description="Version the Job migrates to (absent: newest).")] = None
    outcome: Literal["Running", "Succeeded", "Failed"] = "Running"
    command: Annotated[str | None, Field(description="What the Job runs: up, down or accept-checksum.")] = None
    backup: Annotated[str | None, Field(description="File name of the pg_dump taken first, on the backup "
                                                    "PersistentVolumeClaim.")] = None
    approved: Annotated[str | None, Field(description="Plan hash the run was approved as (approval Manual).")] = None
    version_before: Annotated[int | None, Field(description="Database version before the run.")] = None
    version_after: Annotated[int | None, Field(description="Database version after the run.")] = None
    applied: Annotated[int | None, Field(description="Number of migrations the run applied.")] = None
    reason: str | None = None
    message: Annotated[str | None, Field(description="Why it failed: file, statement, SQL error.")] = None
    started_at: str | None = None
    created_at: Annotated[str | None, Field(description="creationTimestamp of the Job: runs are ordered by it, "
                                                        "and a Job older than every run in history is not "
                                                        "recorded again.")] = None
    finished_at: str | None = None
    duration_seconds: float | None = None


class PlannedMigration(_Model):
    """One migration a plan would run."""

    version: int
    file: str
    sha256: str
    statements: Annotated[int, Field(description="Statements in the direction that runs.")]
    envsub_unchecked: Annotated[list[str] | None, Field(
        default=None, description="ENVSUB variables of this file whose values come from a Secret or ConfigMap "
                                  "(spec.job.env valueFrom, envFrom): the operator checked the file with them "
                                  "empty and cannot check the statements they make; the Job does.")]


class LintFinding(_Model):
    """One lint finding on a planned migration: a writing rule's or squawk's."""

    file: str
    line: int | None = None
    level: Literal["warning", "error"]
    rule: str
    message: str


class PlanStatus(_Model):
    """What the next run would do; with approval Manual, what awaits approval."""

    hash: Annotated[str, Field(description="Identifies exactly this plan: the value of the approve annotation.")]
    direction: Literal["up", "down"] = "up"
    from_version: int | None = None
    to_version: int | None = None
    migrations: Annotated[list[PlannedMigration] | None, Field(
        default=None, description="In the order they would run (absent for an image source).")]
    lint: Annotated[list[LintFinding] | None, Field(
        default=None, description="Lint findings, writing rules' and squawk's (at most 50).")]
    lint_omitted: Annotated[int | None, Field(description="Findings beyond the 50 listed.")] = None
    approval: Annotated[str | None, Field(
        description="Manual mode: Pending, Approved or Stale (the annotation names another plan).")] = None


class GatedDeployment(_Model):
    """One gated Deployment or StatefulSet as the operator last saw it."""

    name: Annotated[str, Field(description="Name of the Deployment or StatefulSet.")]
    pods: Annotated[int, Field(description="Its pods that carry the readiness gate.")] = 0
    waiting: Annotated[int, Field(description="Gated pods held back: their schema-ready condition is "
                                              "not True.")] = 0
    required_version: Annotated[int | None, Field(description="Highest schema version a waiting pod "
                                                              "needs.")] = None
    reason: Annotated[str | None, Field(description="Why pods wait (the pods' condition reason).")] = None
    message: Annotated[str | None, Field(description="Why the gate cannot work on this workload (not "
                                                     "found, no readiness gate in its pod template).")] = None


class RolloutGateStatus(_Model):
    """The workloads this SchemaMigration gates and how many of their pods wait for the schema."""

    waiting: Annotated[int, Field(description="Pods waiting, all workloads together.")] = 0
    deployments: Annotated[list[GatedDeployment] | None, Field(
        default=None, description="One entry per Deployment in spec.rolloutGate.deployments.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})]
    stateful_sets: Annotated[list[GatedDeployment] | None, Field(
        default=None, description="One entry per StatefulSet in spec.rolloutGate.statefulSets.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})]


class SchemaMigrationStatus(_Model):
    """Observed state, written only by the operator."""

    phase: Annotated[Literal["Pending", "Waiting", "Migrating", "Ready", "Failed", "AwaitingApproval"] | None, Field(
        description="Ready: at the target. Migrating: a Job runs. Waiting: another holder has the database's "
                    "Lease. Failed: stalled until something changes (see the Stalled condition). "
                    "AwaitingApproval: approval Manual and status.plan not approved yet.")] = None
    current_version: Annotated[int | None, Field(description="Version the database is at, as read from it.")] = None
    target_version: Annotated[int | None, Field(description="Version to reach ('latest' resolved).")] = None
    pending: Annotated[int | None, Field(description="Migrations not yet applied up to the target.")] = None
    observed_generation: Annotated[int | None, Field(description="metadata.generation this status describes.")] = None
    conditions: Conditions
    lease_holder: Annotated[str | None, Field(description="Holder of the database's Lease while waiting.")] = None
    lease_name: Annotated[str | None, Field(description="The database's Lease (named after host, port, "
                                                        "database and table).")] = None
    current_job: Annotated[RunRecord | None, Field(description="The Job running now.")] = None
    last_job: Annotated[RunRecord | None, Field(description="The last finished Job.")] = None
    history: Annotated[list[RunRecord] | None, Field(default=None, max_length=HISTORY_LIMIT,
                                                     description="Finished runs, newest first.")]
    plan: Annotated[PlanStatus | None, Field(description=(
        "The last plan computed (steps, hash, approval, lint findings); kept after it ran so its findings "
        "stay visible."))] = None
    rollout_gate: Annotated[RolloutGateStatus | None, Field(
        description="Gated Deployments and StatefulSets and their waiting pods (spec.rolloutGate).")] = None


class SchemaMigration(_Model):
    api_version: str = API_VERSION
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: SchemaMigrationSpec
    status: SchemaMigrationStatus | None = None
