"""SchemaMigrationSet v1alpha1: one migration source, many databases — the models are the CRD's source.

The set owns one SchemaMigration per database (ReplicaSet-style: owner reference, a label naming the set,
a deterministic name), built from `spec.template`; everything a SchemaMigration does (Job, Lease,
approval, backup, lint, drift, status) works per database unchanged. The set only decides *when* each
database's SchemaMigration gets the new template: canary first, then at most `maxParallel` at a time,
never more once `maxFailures` databases failed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from schemagate.api.shared import DEFAULT_TABLE
from schemagate.api.v1alpha1 import (
    _DNS_SUBDOMAIN,
    _SQL_IDENT,
    DEFAULT_SECRET_KEY,
    GROUP,
    VERSION,
    Conditions,
    MigrationSettings,
    RolloutGateSpec,
    RolloutGateStatus,
    SourceSpec,
    _cel,
    _Model,
)

KIND = "SchemaMigrationSet"
PLURAL = "schemamigrationsets"
SINGULAR = "schemamigrationset"
SHORT_NAMES = ["smigset"]
API_VERSION = f"{GROUP}/{VERSION}"

# On each child: the set it belongs to (label, so `kubectl get smig -l schemagate.io/set=NAME` lists them),
# the Secret it migrates and the set's template revision it carries (annotations: names may exceed 63).
SET_LABEL = f"{GROUP}/set"
DATABASE_ANNOTATION = f"{GROUP}/set-database"
REVISION_ANNOTATION = f"{GROUP}/set-revision"
# On the set: the hash in status.approval.hash releases the databases after the canary (strategy.approval).
APPROVE_ANNOTATION = f"{GROUP}/approve"

FAILING_LIMIT = 5


class LabelSelectorRequirement(_Model):
    key: Annotated[str, Field(min_length=1, max_length=317)]
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(_Model):
    """A metav1.LabelSelector."""

    model_config = _Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        _cel("has(self.matchLabels) || has(self.matchExpressions)", "a selector needs matchLabels or "
                                                                     "matchExpressions (an empty one would "
                                                                     "select every Secret)")]}}

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class DatabasesSpec(_Model):
    """Which databases: the Secrets a label selector finds and/or a list of Secret names, each holding a
    database URL under `key`."""

    model_config = _Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        _cel("has(self.selector) || has(self.secrets)", "databases needs a selector, a list of secrets, or both"),
    ]}}

    selector: Annotated[LabelSelector | None, Field(
        description="Secrets in this namespace with these labels are databases of the set. Listing them needs "
                    "the chart's rbac.listSecrets (the operator reads only their names and labels).")] = None
    secrets: Annotated[list[Annotated[str, Field(max_length=253, pattern=_DNS_SUBDOMAIN)]] | None, Field(
        default=None, max_length=1000, description="Secrets named explicitly (besides those selected).",
        json_schema_extra={"x-kubernetes-list-type": "set"})]
    key: Annotated[str, Field(min_length=1, max_length=253,
                              description="Key of each Secret whose value is the database URL.")] = DEFAULT_SECRET_KEY
    table: Annotated[str, Field(pattern=_SQL_IDENT,
                                description="goose version table in every database.")] = DEFAULT_TABLE


class CanarySpec(_Model):
    """The databases that go first; the rest wait until every canary is Ready."""

    count: Annotated[int, Field(ge=0, le=1000, description="The first N databases by Secret name.")] = 0
    selector: Annotated[LabelSelector | None, Field(
        description="Selected Secrets with these labels are canaries too (explicitly listed Secrets count "
                    "only by `count`: their labels are not read).")] = None


class StrategySpec(_Model):
    """How a new template reaches the databases."""

    canary: Annotated[CanarySpec, Field(default_factory=CanarySpec)]
    max_parallel: Annotated[int, Field(ge=1, le=100, description="At most this many databases migrate at "
                                                                 "once (a sliding window).")] = 5
    max_failures: Annotated[int, Field(ge=1, le=1000, description="Once this many databases failed at the "
                                                                  "current template, no further database "
                                                                  "starts; the rest stay where they are.")] = 1
    approval: Annotated[Literal["Automatic", "Manual"], Field(
        description="Manual: after the canary, the rest wait in phase AwaitingApproval until the set's "
                    "annotation schemagate.io/approve is status.approval.hash.")] = "Automatic"


class SchemaMigrationSetSpec(_Model):
    """Desired state: one migration source for many databases, and how to roll it out."""

    databases: DatabasesSpec
    source: SourceSpec
    template: Annotated[MigrationSettings, Field(
        default_factory=MigrationSettings,
        description="Each database's SchemaMigration spec, without database, source and rolloutGate (the set "
                    "writes those). targetVersion and approval are per database: each child awaits its own "
                    "approval; the set's own gate after the canary is strategy.approval.")]
    strategy: Annotated[StrategySpec, Field(default_factory=StrategySpec)]
    rollout_gate: Annotated[RolloutGateSpec | None, Field(
        description="Deployments whose new pods become Ready only when every database of the set is at the "
                    "version they need (off when absent).")] = None


class FailingDatabase(_Model):
    database: Annotated[str, Field(description="The Secret naming the database.")]
    migration: Annotated[str, Field(description="Its SchemaMigration.")]
    reason: str | None = None
    message: str | None = None


class SetApproval(_Model):
    hash: Annotated[str, Field(description="The value of the approve annotation that releases the rest.")]
    state: Literal["Pending", "Approved", "Stale"]


class SchemaMigrationSetStatus(_Model):
    """Observed state, written only by the operator."""

    phase: Annotated[Literal["Pending", "Canary", "AwaitingApproval", "Progressing", "Halted", "Failed", "Ready"]
                     | None, Field(
        description="Canary: the canaries migrate. AwaitingApproval: strategy.approval Manual. Progressing: "
                    "the rest migrate. Halted: maxFailures reached, nothing new starts. Failed: every database "
                    "was released and some failed. Ready: every database at the target.")] = None
    observed_generation: int | None = None
    revision: Annotated[str | None, Field(description="Hash of source and template: the children at it are "
                                                      "updated.")] = None
    databases: Annotated[int | None, Field(description="Databases of the set.")] = None
    updated: Annotated[int | None, Field(description="Databases whose SchemaMigration has this revision.")] = None
    ready: Annotated[int | None, Field(description="Updated and Ready.")] = None
    failed: Annotated[int | None, Field(description="Updated and Failed (Stalled).")] = None
    phases: Annotated[dict[str, int] | None, Field(description="Databases per SchemaMigration phase "
                                                               "(NotStarted: no SchemaMigration yet).")] = None
    target_version: Annotated[int | None, Field(description="Version the databases are to reach.")] = None
    lowest_version: Annotated[int | None, Field(description="Lowest current version over the databases.")] = None
    highest_version: Annotated[int | None, Field(description="Highest current version.")] = None
    failing: Annotated[list[FailingDatabase] | None, Field(
        default=None, max_length=FAILING_LIMIT, description=f"The first {FAILING_LIMIT} failing databases.")]
    failing_omitted: Annotated[int | None, Field(description="Failing databases beyond those listed.")] = None
    canaries: Annotated[list[str] | None, Field(default=None, description="The canary databases (Secrets).")]
    approval: SetApproval | None = None
    conditions: Conditions
    rollout_gate: Annotated[RolloutGateStatus | None, Field(
        description="Gated Deployments (spec.rolloutGate) and their waiting pods.")] = None


class SchemaMigrationSet(_Model):
    api_version: str = API_VERSION
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: SchemaMigrationSetSpec
    status: SchemaMigrationSetStatus | None = None
