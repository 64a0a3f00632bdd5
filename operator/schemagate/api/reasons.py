"""Every reason schemagate writes: on conditions, in the runner's JSON result, on pod conditions, on Events.

One module, one constant per reason, each with the line that says when it is used. They are CamelCase and
stable — pipelines, alerts, Argo CD health checks and people match on them: never rename one. A reason the
runner reports (`error.reason` in its termination message) is the condition reason the operator sets for
it, so both sides name it here once.
"""

from __future__ import annotations

# --- A SchemaMigration's conditions (Ready / Reconciling / Stalled) -------------------------------------

UP_TO_DATE = "UpToDate"
"""Ready: the database is at the target version; also a succeeded run's record."""
AHEAD_OF_SOURCE = "AheadOfSource"
"""Ready with target latest: the database holds every file's version and newer ones besides."""
MIGRATING = "Migrating"
"""Reconciling: a Job of ours is migrating the database."""
PENDING_MIGRATIONS = "PendingMigrations"
"""Never set so far (a plan with pending files says Migrating or WaitingForLease); kept so no one reuses it."""
WAITING_FOR_LEASE = "WaitingForLease"
"""Reconciling: another runner holds the database's Lease."""
AWAITING_APPROVAL = "AwaitingApproval"
"""Reconciling: the plan waits for the approval annotation (a SchemaMigration's or a set's)."""
DATABASE_UNREADABLE = "DatabaseUnreadable"
"""Reconciling: the operator's own read of the database failed while a Job runs on it: not a verdict."""
PROGRESSING = "Progressing"
"""Reconciling: a SchemaMigrationSet is migrating its databases past the canaries."""
NOT_STALLED = "NotStalled"
"""Stalled=False: nothing blocks progress."""
INVALID_SPEC = "InvalidSpec"
"""Stalled: the spec does not validate (the message names the field)."""
SOURCE_NOT_FOUND = "SourceNotFound"
"""Stalled: a ConfigMap the source names is missing or not readable."""
SECRET_NOT_FOUND = "SecretNotFound"
"""Stalled: the database Secret, its key, or a text value in it is missing."""
INVALID_DATABASE_URL = "InvalidDatabaseURL"
"""Stalled: the Secret's value is not something libpq can parse."""
DOWNGRADE_REFUSED = "DowngradeRefused"
"""No longer set: a downgrade is DowngradeNotAllowed or runs; kept so old statuses still read."""
DOWNGRADE_NOT_ALLOWED = "DowngradeNotAllowed"
"""Stalled: the target is below the database's version and spec.allowDowngrade is false."""
LINT_FAILED = "LintFailed"
"""Stalled: the plan's files have lint findings that spec.lint says block the run."""
JOB_FAILED = "JobFailed"
"""Stalled: a Job failed without a reason of the runner's, or disappeared before it finished."""
JOB_CONFLICT = "JobConflict"
"""Stalled: the plan's Job name is taken by a Job this object does not own."""
JOB_REJECTED = "JobRejected"
"""Stalled: the apiserver refused the Job (invalid resources, quota, RBAC, admission)."""
VERIFICATION_FAILED = "VerificationFailed"
"""Stalled: the schema an application declared it needs is not in place (`schemagate verify`)."""
RUNNER_KILLED = "RunnerKilled"
"""Stalled: the runner's process ended without a result (SIGKILL, OOM, pod deleted)."""
IMAGE_NOT_ALLOWED = "ImageNotAllowed"
"""Stalled: the spec names a runner image the installer did not allow; nothing is created."""
SERVICE_ACCOUNT_NOT_ALLOWED = "ServiceAccountNotAllowed"
"""Stalled: the spec names a ServiceAccount the installer did not allow; nothing is created."""
BACKUP_CLAIM_NOT_ALLOWED = "BackupClaimNotAllowed"
"""Stalled: the backup claim lacks the label that allows backups onto it; nothing is created."""
NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed"
"""Stalled: cluster-wide, the object is watched but its namespace is not one the operator acts in."""
DATABASE_NOT_ALLOWED = "DatabaseNotAllowed"
"""Stalled: the URL names a host outside --allow-database-host."""

# --- A migration run's failures: the runner's `error.reason`, and the condition reason for it -----------

MIGRATION_FAILED = "MigrationFailed"
"""A statement failed; the result says which file, statement and line."""
INVALID_MIGRATIONS = "InvalidMigrations"
"""A file is misnamed, duplicated, unreadable or not valid goose SQL."""
NO_MIGRATION_FILES = "NoMigrationFiles"
"""The source holds no .sql migration at all."""
CHECKSUM_MISMATCH = "ChecksumMismatch"
"""An applied migration's file changed since it was applied."""
MISSING_MIGRATIONS = "MissingMigrations"
"""Unapplied files older than the newest applied one (out of order)."""
TARGET_NOT_FOUND = "TargetNotFound"
"""up-to / down-to names a version no file has."""
NO_DOWN_MIGRATION = "NoDownMigration"
"""Rolling back an applied version whose file (or its Down section) is not in the source."""
NO_NEXT_VERSION = "NoNextVersion"
"""up-by-one with nothing left to apply."""
NO_CURRENT_VERSION = "NoCurrentVersion"
"""down/redo on a database at version 0."""
LOCK_TIMEOUT = "LockTimeout"
"""Another runner held the advisory lock for longer than --lock-wait."""
LEASE_UNAVAILABLE = "LeaseUnavailable"
"""The Kubernetes Lease is held by someone else."""
CONNECTION_FAILED = "ConnectionFailed"
"""Host unreachable, database missing, TLS problems: the database could not be reached."""
AUTHENTICATION_FAILED = "AuthenticationFailed"
"""The database refused the user or password."""
DATABASE_ERROR = "DatabaseError"
"""Any other database error outside a migration (permissions, the tracking table)."""
INVALID_ARGUMENTS = "InvalidArguments"
"""Bad command-line usage of the runner."""
INTERRUPTED = "Interrupted"
"""SIGTERM/SIGINT (Job deadline, pod deletion); the running statement was cancelled."""
BACKUP_FAILED = "BackupFailed"
"""--backup-file: pg_dump failed, so nothing was applied."""
SOURCE_CHANGED = "SourceChanged"
"""--expect-digest: the files differ from the ones planned (a ConfigMap edited since); nothing was applied."""
NO_TRANSACTION_INTERRUPTED = "NoTransactionInterrupted"
"""A NO TRANSACTION file's run was cut short: which statements took effect is unknown; check by hand."""

RUN_FAILURES = (
    MIGRATION_FAILED, INVALID_MIGRATIONS, NO_MIGRATION_FILES, CHECKSUM_MISMATCH, MISSING_MIGRATIONS,
    TARGET_NOT_FOUND, NO_DOWN_MIGRATION, NO_NEXT_VERSION, NO_CURRENT_VERSION, LOCK_TIMEOUT, LEASE_UNAVAILABLE,
    CONNECTION_FAILED, AUTHENTICATION_FAILED, DATABASE_ERROR, INVALID_ARGUMENTS, INTERRUPTED, BACKUP_FAILED,
    SOURCE_CHANGED, NO_TRANSACTION_INTERRUPTED,
)
"""Every reason the runner can put in its result."""

INVALID_INPUT = frozenset({INVALID_MIGRATIONS, NO_MIGRATION_FILES, INVALID_ARGUMENTS, TARGET_NOT_FOUND})
"""Reasons that mean "the input is wrong" (runner exit code 2) rather than "the run failed" (exit code 1)."""

# --- A SchemaMigrationSet's conditions (besides the shared ones above) ----------------------------------

CANARY = "Canary"
"""Reconciling: the set migrates its canary databases first."""
NO_DATABASES = "NoDatabases"
"""Stalled: the set's Secrets and selector name no database."""
CANARY_FAILED = "CanaryFailed"
"""Stalled: a canary database's migration failed; the others are not started."""
MAX_FAILURES_REACHED = "MaxFailuresReached"
"""Stalled: more databases failed than spec.strategy.maxFailures allows; no more are started."""
DATABASES_FAILED = "DatabasesFailed"
"""Stalled: every database has finished and some of them failed."""
NAME_CONFLICT = "NameConflict"
"""Stalled: a SchemaMigration not owned by the set has the name a database's child would have."""
SECRETS_NOT_LISTABLE = "SecretsNotListable"
"""Stalled: the operator may not list Secrets to resolve spec.databases.selector."""
CHILD_REJECTED = "ChildRejected"
"""Stalled: the apiserver refused to create or update a child SchemaMigration."""

# --- The rollout gate's pod condition (schemagate.io/schema-ready) --------------------------------------

SCHEMA_READY = "SchemaReady"
"""True: the database is at (or past) the version the pod needs."""
WAITING_FOR_MIGRATION = "WaitingForMigration"
"""False: the migration to the version the pod needs is planned or running."""
MIGRATION_STALLED = "MigrationStalled"
"""False: the SchemaMigration that would bring the pod's version is stalled."""
VERSION_NOT_PLANNED = "VersionNotPlanned"
"""False: the pod needs a version the SchemaMigration does not target."""
DATABASE_UNAVAILABLE = "DatabaseUnavailable"
"""False: the database's version could not be read."""
INVALID_REQUIRED_VERSION = "InvalidRequiredVersion"
"""False: the pod template's required-schema-version annotation is not a version."""
ANNOTATION_MISMATCH = "AnnotationMismatch"
"""False: the pod's annotation is not its template's (edited live)."""
GATE_REMOVED = "GateRemoved"
"""True: the workload left the gate while the pod was held."""
GATE_CONFLICT = "GateConflict"
"""status.rolloutGate: several objects name one workload, so none of them decides its pods."""

# --- Event reasons (Warning Events of a failure carry the failure's reason above) -----------------------

MIGRATION_STARTED = "MigrationStarted"
"""Normal, on the SchemaMigration: its Job was created."""
MIGRATION_SUCCEEDED = "MigrationSucceeded"
"""Normal, on the SchemaMigration: its Job migrated the database."""
POD_CANNOT_START = "PodCannotStart"
"""Warning, on the SchemaMigration: its running Job's pod cannot start (an image that cannot be pulled, a
Secret or ServiceAccount that does not exist, a quota, no node fits), once per Job and cause; it stays
Reconciling Migrating, since the kubelet or the Job controller retries until the Job's deadline."""
LEASE_TAKEN_OVER = "LeaseTakenOver"
"""Normal, on the SchemaMigration: the Lease's holder was a Job that is gone, so it was freed."""
LINT_FINDINGS = "LintFindings"
"""Warning, on the SchemaMigration: the plan's files have lint findings (they do not block)."""
LINT_UNAVAILABLE = "LintUnavailable"
"""Warning, on the SchemaMigration: the plan could not be linted (squawk missing or failing)."""
ROLLOUT_HELD = "RolloutHeld"
"""On the workload: new pods wait for the schema they need."""
ROLLOUT_RELEASED = "RolloutReleased"
"""Normal, on the workload: the schema is in place and the held pods were let through."""
ROLLOUT_GATE_MISCONFIGURED = "RolloutGateMisconfigured"
"""Warning, on the workload: it cannot be gated as named (no readinessGates entry, a conflict, a selector)."""
ROLLOUT_GATE_REMOVED = "RolloutGateRemoved"
"""Warning, on the workload: it left the gate and its held pods were released."""

ALL = frozenset(v for k, v in dict(globals()).items() if k.isupper() and isinstance(v, str))
"""Every reason above: the bounded set of reason labels the metrics use."""
