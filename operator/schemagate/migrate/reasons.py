"""Machine-readable failure reasons of a migration run.

They appear as `error.reason` in the JSON result (the Job's termination message) and the operator reuses
them as condition reasons, so they are CamelCase and stable: never rename one.
"""

from __future__ import annotations

MIGRATION_FAILED = "MigrationFailed"  # a statement failed; the result says which file, statement and line
INVALID_MIGRATIONS = "InvalidMigrations"  # a file is misnamed, duplicated, unreadable or not valid goose SQL
NO_MIGRATION_FILES = "NoMigrationFiles"  # the source holds no .sql migration at all
CHECKSUM_MISMATCH = "ChecksumMismatch"  # an applied migration's file changed since it was applied
MISSING_MIGRATIONS = "MissingMigrations"  # unapplied files older than the newest applied one (out of order)
TARGET_NOT_FOUND = "TargetNotFound"  # up-to / down-to names a version no file has
NO_DOWN_MIGRATION = "NoDownMigration"  # rolling back an applied version whose file is not in the source
NO_NEXT_VERSION = "NoNextVersion"  # up-by-one with nothing left to apply
NO_CURRENT_VERSION = "NoCurrentVersion"  # down/redo on a database at version 0
LOCK_TIMEOUT = "LockTimeout"  # another runner held the advisory lock for longer than --lock-wait
LEASE_UNAVAILABLE = "LeaseUnavailable"  # the Kubernetes Lease is held by someone else
CONNECTION_FAILED = "ConnectionFailed"  # host unreachable, database missing, TLS problems, ...
AUTHENTICATION_FAILED = "AuthenticationFailed"  # wrong user or password
DATABASE_ERROR = "DatabaseError"  # any other database error outside a migration (permissions, tracking table)
INVALID_ARGUMENTS = "InvalidArguments"  # bad command-line usage
INTERRUPTED = "Interrupted"  # SIGTERM/SIGINT (Job deadline, pod deletion); the running statement was cancelled
BACKUP_FAILED = "BackupFailed"  # --backup-file: pg_dump failed, so nothing was applied
SOURCE_CHANGED = "SourceChanged"  # --expect-digest: the files differ from the ones planned; nothing was applied
# A NO TRANSACTION file's run was cut short (killed, connection lost, statements of it stay applied): which
# of its statements took effect is unknown, so no run starts until someone has looked (resolve-interrupted).
NO_TRANSACTION_INTERRUPTED = "NoTransactionInterrupted"

ALL = (
    MIGRATION_FAILED, INVALID_MIGRATIONS, NO_MIGRATION_FILES, CHECKSUM_MISMATCH, MISSING_MIGRATIONS,
    TARGET_NOT_FOUND, NO_DOWN_MIGRATION, NO_NEXT_VERSION, NO_CURRENT_VERSION, LOCK_TIMEOUT, LEASE_UNAVAILABLE,
    CONNECTION_FAILED, AUTHENTICATION_FAILED, DATABASE_ERROR, INVALID_ARGUMENTS, INTERRUPTED, BACKUP_FAILED,
    SOURCE_CHANGED, NO_TRANSACTION_INTERRUPTED,
)

# Reasons that mean "the input is wrong" (exit code 2) rather than "the run failed" (exit code 1).
INVALID_INPUT = frozenset({INVALID_MIGRATIONS, NO_MIGRATION_FILES, INVALID_ARGUMENTS, TARGET_NOT_FOUND})
