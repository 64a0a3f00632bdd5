"""Builders shared by the unit tests: one `plan_inputs` (decide, policy, approval, drift, lint) in place of
each module's own `inputs(**over)`, one `smig_spec` and one `job_request` (the Job's tests), so a new
field of Inputs, of the spec or of JobRequest is one edit.

Test modules import them (`from tests.unit.conftest import plan_inputs`); each keeps only what differs
(its files, its database, its Job's name) as `functools.partial(plan_inputs, ...)`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from schemagate.api.v1alpha1 import SchemaMigrationSpec
from schemagate.controller.decide import Inputs, MigrationFile, ObservedDatabase
from schemagate.controller.jobs import JobRequest


def plan_inputs(**over: Any) -> Inputs:
    """decide.Inputs of SchemaMigration ns/app at generation 1, target latest, no files, an empty database."""
    base = Inputs(name="app", namespace="ns", generation=1, target=None, migrations=(), db=ObservedDatabase(0))
    return dataclasses.replace(base, **over)


def migration_files(*versions: int, **fields: Any) -> tuple[MigrationFile, ...]:
    """MigrationFile 0000N_mN.sql with checksum shaN for each version (`fields` for every one of them)."""
    return tuple(MigrationFile(v, f"{v:05d}_m{v}.sql", f"sha{v}", **fields) for v in versions)


def smig_spec(**over: Any) -> SchemaMigrationSpec:
    """A valid SchemaMigration spec (Secret db, ConfigMap m) with `over` (camelCase keys) on top."""
    return SchemaMigrationSpec.model_validate({"database": {"secretRef": {"name": "db"}},
                                               "source": {"configMaps": ["m"]}, **over})


def job_request(**over: Any) -> JobRequest:
    """The JobRequest of plan abcdef12 of SchemaMigration team/app at generation 1, target latest, Lease l,
    runner schemagate:dev, with `over` on top."""
    base = JobRequest(name="app-g1-abcdef12", plan="abcdef12", generation=1, target=None, lease_name="l",
                      lease_holder="team/app-g1-abcdef12", default_image="schemagate:dev")
    return dataclasses.replace(base, **over)
