"""Production policy end to end: manual approval, rollback, backup, drift acceptance, lint.

The real node, the operator's pod, PostgreSQL and kubectl, as in test_operator.py.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid

import psycopg
import psycopg.conninfo
import pytest

from kube_fixtures import wait_until
from migration_files import AUDIT_WITHOUT_DOWN as V3_NO_DOWN
from migration_files import EMAIL_REQUIRED as V2_RISKY  # squawk: adding-required-field on line 3
from migration_files import ORDERS as V2
from migration_files import ORDERS_WITH_NOTE as V2_OTHER
from migration_files import USERS as V1

pytestmark = pytest.mark.e2e


def _events(app, reason: str) -> list[str]:
    out = app.kubectl("get", "events", "--field-selector", f"involvedObject.name=app,reason={reason}",
                      "-o", "json").stdout
    return [e["message"] for e in json.loads(out)["items"]]


def _awaiting(app, approval: str = "Pending") -> dict:
    def probe():
        status = app.status()
        plan = status.get("plan") or {}
        return status if status.get("phase") == "AwaitingApproval" and plan.get("approval") == approval else None
    try:
        return wait_until(f"AwaitingApproval with approval {approval}", probe)
    except pytest.fail.Exception:
        print(json.dumps(app.status(), indent=1), app.operator.tail())
        raise


def _approve(app, plan_hash: str) -> None:
    app.kubectl("annotate", "smig/app", f"schemagate.io/approve={plan_hash}", "--overwrite")


def test_manual_approval_applies_exactly_the_approved_plan_and_refuses_a_stale_one(app):
    app.secret(app.database_url)
    app.migrations(V1)
    app.schemamigration(approval="Manual")
    status = _awaiting(app)
    plan = status["plan"]
    assert [(m["version"], m["file"], m["statements"]) for m in plan["migrations"]] == [(1, "00001_users.sql", 1)]
    assert plan["migrations"][0]["sha256"] == hashlib.sha256(V1["00001_users.sql"].encode()).hexdigest()
    assert (plan["fromVersion"], plan["toVersion"], plan["direction"]) == (0, 1, "up")
    ready = app.condition("Ready")
    assert ready["reason"] == "AwaitingApproval" and f"schemagate.io/approve={plan['hash']}" in ready["message"]
    assert app.condition("Stalled")["status"] == "False"
    assert app.jobs() == [] and app.db_versions() == []

    _approve(app, plan["hash"])
    app.wait_ready(1)
    last = app.last_job()
    assert last["approved"] == plan["hash"]

    # A new migration awaits approval; it changes before the approval arrives: the approval is stale.
    app.migrations({**V1, **V2})
    seen = _awaiting(app)["plan"]["hash"]
    app.migrations({**V1, **V2_OTHER})
    current = wait_until("the plan to change", lambda: (h := app.status()["plan"]["hash"]) != seen and h)
    _approve(app, seen)
    stale = _awaiting(app, "Stale")
    message = app.condition("Ready")["message"]
    assert f"approval {seen} is stale" in message and current in message and "nothing was applied" in message
    assert stale["plan"]["hash"] == current
    assert app.db_versions() == [1] and len(app.jobs()) == 1
    assert any(seen in m for m in wait_until("an ApprovalStale event", lambda: _events(app, "ApprovalStale")))

    _approve(app, current)
    app.wait_ready(2)
    with psycopg.connect(app.database_url) as conn:  # the approved content ran, not the stale one
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' "
                            "AND column_name = 'note'").fetchone()[0] == 1


def test_rollback_only_when_allowed_and_never_without_a_down_section(app):
    app.secret(app.database_url)
    app.migrations({**V1, **V2})
    app.schemamigration()
    app.wait_ready(2)

    app.schemamigration(targetVersion=1)
    stalled = app.wait_condition("Stalled", "True", "DowngradeNotAllowed")
    assert "allowDowngrade" in stalled["message"]
    assert len(app.jobs()) == 1 and app.db_versions() == [1, 2]

    app.schemamigration(targetVersion=1, allowDowngrade=True)
    app.wait_ready(1)
    assert not app.table_exists("orders") and app.table_exists("users") and app.db_versions() == [1]
    assert any("rolling back version 2 → 1" in m for m in _events(app, "MigrationStarted"))

    app.migrations({**V1, **V2, **V3_NO_DOWN})
    app.schemamigration(targetVersion="latest", allowDowngrade=True)
    app.wait_ready(3)
    jobs = len(app.jobs())
    app.schemamigration(targetVersion=1, allowDowngrade=True)
    stalled = app.wait_condition("Stalled", "True", "NoDownMigration")
    assert "00003_audit.sql has no `-- +goose Down` section" in stalled["message"]
    assert "nothing was run" in stalled["message"]
    assert app.db_versions() == [1, 2, 3] and app.table_exists("audit") and len(app.jobs()) == jobs


def test_backup_is_written_to_the_claim_before_applying(app, kube):
    app.secret(app.database_url)
    app.migrations(V1)
    where = kube.backup_volume(app.namespace, "db-backups")
    app.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "db-backups", "labels": {"schemagate.io/backup": "true"}},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    app.schemamigration(backup={"claimName": "db-backups"})
    app.wait_ready(1)
    last = app.last_job()
    (job,) = app.jobs()
    assert last["backup"] == f"{job['metadata']['name']}.dump"
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "backup", "persistentVolumeClaim": {"claimName": "db-backups"}} in volumes
    # The volume is a directory of this machine: the dump pg_dump wrote in the pod is a real one.
    listing = subprocess.run(["pg_restore", "--list", str(where / last["backup"])], capture_output=True, text=True,
                             check=True)
    assert "users" not in listing.stdout  # taken before the migration ran


def test_failed_backup_applies_nothing(app, kube):
    role = f"mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(app.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'")
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        conn.execute("CREATE TABLE payroll (amount bigint)")  # the role cannot read it, so pg_dump fails
    info = psycopg.conninfo.conninfo_to_dict(app.database_url)
    app.secret(f"postgresql://{role}:pw-{role}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/"
               f"{info['dbname']}")
    app.migrations(V1)
    kube.backup_volume(app.namespace, "db-backups")
    app.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "db-backups", "labels": {"schemagate.io/backup": "true"}},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    app.schemamigration(backup={"claimName": "db-backups"})
    stalled = app.wait_condition("Stalled", "True", "BackupFailed")
    assert "nothing was applied" in stalled["message"] and "payroll" in stalled["message"]
    assert f"pw-{role}" not in json.dumps(app.status())
    assert app.db_versions() == [] and not app.table_exists("users")


def test_edited_migration_is_accepted_through_the_annotation(app):
    app.secret(app.database_url)
    app.migrations(V1)
    app.schemamigration()
    app.wait_ready(1)
    edited = V1["00001_users.sql"].replace("-- +goose Down", "-- reviewed 2026-11-26\n-- +goose Down")
    sha = hashlib.sha256(edited.encode()).hexdigest()
    app.migrations({"00001_users.sql": edited})
    stalled = app.wait_condition("Stalled", "True", "ChecksumMismatch")
    assert "00001_users.sql" in stalled["message"]
    assert f"kubectl annotate smig/app schemagate.io/accept-checksum=1:{sha} --overwrite" in stalled["message"]

    app.kubectl("annotate", "smig/app", f"schemagate.io/accept-checksum=1:{'0' * 64}")
    wait_until("the wrong checksum refused", lambda: "nothing accepted" in app.condition("Stalled")["message"])
    assert app.jobs()[0]["metadata"]["name"] and len(app.jobs()) == 1

    app.kubectl("annotate", "smig/app", f"schemagate.io/accept-checksum=1:{sha}", "--overwrite")
    app.wait_ready(1)
    commands = [j["spec"]["template"]["spec"]["containers"][0]["command"] for j in app.jobs()]
    assert any(c[-2:] == ["accept-checksum", "1"] for c in commands)
    assert app.db_versions() == [1]  # nothing re-applied


def test_lint_findings_warn_by_default_and_block_with_fail_on(app):
    app.secret(app.database_url)
    app.migrations(V1)
    app.schemamigration()
    app.wait_ready(1)

    app.migrations({**V1, **V2_RISKY})
    app.wait_ready(2)
    lint = app.status()["plan"]["lint"]
    assert {"file": "00002_email.sql", "line": 3, "level": "warning", "rule": "adding-required-field"}.items() <= \
        next(f for f in lint if f["rule"] == "adding-required-field").items()
    # the writing rules beside squawk's: the ADD COLUMN has no IF NOT EXISTS (line 3), nor the DROP COLUMN
    # its IF EXISTS (line 5)
    assert [(f["line"], f["level"]) for f in lint if f["rule"] == "require-idempotent-ddl"] == [(3, "warning"),
                                                                                                 (5, "warning")]
    messages = wait_until("a LintFindings event", lambda: _events(app, "LintFindings"))
    assert any("00002_email.sql:3" in m and "adding-required-field" in m for m in messages)
    assert any("00002_email.sql:3: warning require-idempotent-ddl" in m for m in messages)

    risky_again = {"00003_phone.sql": V2_RISKY["00002_email.sql"].replace("email", "phone")}
    app.schemamigration(lint={"failOn": "warning"})
    app.migrations({**V1, **V2_RISKY, **risky_again})
    stalled = app.wait_condition("Stalled", "True", "LintFailed")
    assert "00003_phone.sql:3" in stalled["message"] and "nothing was applied" in stalled["message"]
    assert app.db_versions() == [1, 2]

    app.schemamigration(lint={"failOn": "warning", "exclude": ["adding-required-field", "require-statement-timeout"]})
    stalled = app.wait_condition("Stalled", "True", "LintFailed")  # squawk's excluded, the writing rule is not
    assert "00003_phone.sql:3: warning require-idempotent-ddl" in stalled["message"]
    assert app.db_versions() == [1, 2]

    app.schemamigration(lint={"failOn": "warning", "exclude": ["adding-required-field", "require-statement-timeout",
                                                               "require-idempotent-ddl"]})
    app.wait_ready(3)
