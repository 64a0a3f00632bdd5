"""Bad inputs end to end (issue 16, Deliver 3): what a person gets wrong in a SchemaMigration, its migration
files, its Secret, its URL, its timeouts, sizes and namespaces, and what they are told.

Each row of a table is one bad input, and says where it is stopped and what the message must name:

- REFUSED: the apiserver (CRD schema, CEL rules, the chart's ValidatingAdmissionPolicy) or kubectl refuses
  the manifest at `kubectl apply`; the refusal names the field and the object, and nothing exists after it.
- STALLED: the apiserver accepts it and the operator stops before running anything: `Stalled=True` with
  the row's reason (on `Ready=False` too, phase Failed), a message naming the object (ConfigMap, Secret,
  claim, spec field) and, for a file, the file and its line; no Job exists and the database is as it was
  (no tracking table, or the versions an earlier good run left); the Secret's password is nowhere in status.
- MID_RUN: the Job runs and a file fails part-way: the reason the runner gave, the message naming the Job,
  the file and the line, and the database holding exactly the versions applied before that file (no
  version row for it, its transaction's objects absent).

Then the input is fixed (the row's `fix`) and the object must become Ready at the expected version, the
database holding each version once. Checking that for all 61 would double the file's run time, so it
is checked for every MID_RUN row and for a representative subset of the others, each way a person fixes
things at least once:

- REFUSED: source-both (CEL), target-typo-field (strict decoding), secret-name-uppercase (schema pattern),
  source-image-not-allowed (admission policy): the valid manifest applied; configmap-too-big: the schema
  split over two ConfigMaps.
- STALLED: only-a-down-section, upper-case-extension, out-of-order-file (the ConfigMap replaced, the last one
  renaming the file past the database's version); target-not-among-files, backup-claim-missing,
  node-selector-bad-key, secret-key-missing (a spec field changed or removed); url-port-not-a-number,
  url-database-missing (the Secret replaced).
- MID_RUN: all five, each with what docs/operator.md says to do (a fixed file, the retry annotation once the
  lock is gone, a file fast enough for its deadline, a table name; for the NO TRANSACTION file: undo by
  hand, then `schemagate migrate resolve-interrupted`, then the fixed file).

A row without a fix is stopped by the same code as one with it (the parser, the Secret's checks, the CRD),
and that code reads the input afresh at every reconcile. The namespace the chart does not name cannot be
fixed from inside a test (it is the chart's watch.namespaces): that test checks what there is to see.

Rows are independent: every row has its own SchemaMigration, ConfigMap, Secret and database, in one
namespace per table (so the whole file takes three of the session's namespace pool), and each test
deletes its SchemaMigration when it ends so the operator's 1 s resync does not keep working for it.

Already covered elsewhere, so not repeated here: SQL before `-- +goose Up`, a file in two ConfigMaps, a
missing Secret or ConfigMap, a wrong password, an unreachable port, an edited applied file, a Job the
apiserver refuses over a resource quantity (tests/e2e/test_operator.py); runner image, ServiceAccount and
backup claim not allowed, a token as the URL, a probe of a non-PostgreSQL port (test_isolation.py);
downgrades, lint (test_policy.py).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import psycopg
import pytest

from kube_fixtures import Kube, wait_until
from operator_fixtures import App, Operator

pytestmark = pytest.mark.e2e

USERS = "-- +goose Up\nCREATE TABLE users (id bigint PRIMARY KEY);\n-- +goose Down\nDROP TABLE users;\n"
ORDERS = "-- +goose Up\nCREATE TABLE orders (id bigint PRIMARY KEY);\n-- +goose Down\nDROP TABLE orders;\n"
AUDIT = "-- +goose Up\nCREATE TABLE audit (id bigint PRIMARY KEY);\n-- +goose Down\nDROP TABLE audit;\n"
GOOD = {"00001_users.sql": USERS, "00002_orders.sql": ORDERS}  # version 2
DROP = object()  # in a spec patch: remove the key


def merged(base: Any, patch: Any) -> Any:
    """`patch` laid over `base` (dicts key by key, DROP removes a key, anything else replaces)."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


def filled(value: Any, **names: str) -> Any:
    """Every string in `value` with {ns}, {cm}, {db}, {name} replaced by this row's objects."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: filled(v, **names) for k, v in value.items()}
    if isinstance(value, list):
        return [filled(v, **names) for v in value]
    return value


class Row:
    """One row's objects in the group's namespace, named after the row, on a database of its own."""

    def __init__(self, app: App, case_id: str):
        self.app, self.name = app, case_id
        self.cm, self.db = f"{case_id}-m", f"{case_id}-db"

    def spec(self, patch: dict[str, Any] | None = None) -> dict[str, Any]:
        base = {"database": {"secretRef": {"name": self.db}}, "source": {"configMaps": [self.cm]}}
        return filled(merged(base, patch or {}), ns=self.app.namespace, cm=self.cm, db=self.db, name=self.name)

    def manifest(self, patch: dict[str, Any] | None = None, name: str | None = None,
                 namespace: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name or self.name}
        if namespace:
            meta["namespace"] = namespace
        return {"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration", "metadata": meta,
                "spec": self.spec(patch)}

    def apply(self, patch: dict[str, Any] | None = None) -> None:
        self.app.apply(self.manifest(patch))

    def says(self, fragments: tuple[str, ...]) -> list[str]:
        return [f.format(ns=self.app.namespace, cm=self.cm, db=self.db, name=self.name) for f in fragments]

    def files(self, data: dict[str, str] | None, binary: dict[str, str] | None = None) -> None:
        doc: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": self.cm},
                               "data": data or {}}
        if binary:
            doc["binaryData"] = binary
        self.app.apply(doc)

    def secret(self, data: dict[str, str]) -> None:
        self.app.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": self.db}, "stringData": data})

    def jobs(self) -> list[dict[str, Any]]:
        """Jobs this SchemaMigration owns (by owner reference, not the label: a label selector would itself
        be refused for a name longer than a label value)."""
        items = json.loads(self.app.kubectl("get", "jobs", "-o", "json").stdout)["items"]
        return [j for j in items if any(o.get("name") == self.name for o in j["metadata"].get("ownerReferences") or [])]

    def exists(self, name: str | None = None) -> bool:
        return self.app.kubectl("get", "schemamigration", name or self.name, check=False).returncode == 0

    def delete(self) -> None:
        self.app.kubectl("delete", "schemamigration", self.name, "--ignore-not-found", "--wait=false", check=False)

    def stalled(self, reason: str, timeout: float = 90) -> dict[str, Any]:
        return self.app.wait_condition("Stalled", "True", reason, name=self.name, timeout=timeout)


def _password(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).password or "")


def _with(url: str, *, password: str | None = None, port: str | None = None, dbname: str | None = None,
          query: str | None = None, scheme: str | None = None, no_password: bool = False) -> str:
    """The database URL with one part replaced (what a person mistypes)."""
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.unquote(parts.username or "")
    pw = parts.password if password is None else password
    auth = user if no_password else f"{user}:{pw}"
    netloc = f"{auth}@{parts.hostname}:{parts.port if port is None else port}"
    return urllib.parse.urlunsplit((scheme or parts.scheme, netloc, f"/{dbname}" if dbname else parts.path,
                                    parts.query if query is None else query, ""))


@pytest.fixture(scope="module")
def kube_and_operator(kube: Kube, operator: Operator) -> tuple[Kube, Operator]:
    return kube, operator


def _group_namespace(operator: Operator) -> Iterator[str]:
    name = operator.take_namespace()
    yield name
    operator.clear_namespace(name)


@pytest.fixture(scope="module")
def refused_namespace(kube_and_operator: tuple[Kube, Operator]) -> Iterator[str]:
    yield from _group_namespace(kube_and_operator[1])


@pytest.fixture(scope="module")
def stalled_namespace(kube_and_operator: tuple[Kube, Operator]) -> Iterator[str]:
    yield from _group_namespace(kube_and_operator[1])


@pytest.fixture(scope="module")
def mid_run_namespace(kube_and_operator: tuple[Kube, Operator]) -> Iterator[str]:
    yield from _group_namespace(kube_and_operator[1])


@contextlib.contextmanager
def _row(kube: Kube, operator: Operator, namespace: str, database_url: str, case_id: str) -> Iterator[Row]:
    row = Row(App(kube, namespace, operator, database_url), case_id)
    try:
        yield row
    finally:
        row.delete()


def _ready(row: Row, version: int, versions: list[int]) -> None:
    row.app.wait_ready(version, name=row.name, timeout=120)
    assert row.app.db_versions() == versions, "each version applied once"


# --------------------------------------------------------------------------------------------------------
# Refused at `kubectl apply`: the apiserver's own words, naming the object and the field.


@dataclass(frozen=True)
class Refused:
    id: str
    says: tuple[str, ...]  # in kubectl's stderr
    spec: dict[str, Any] = field(default_factory=dict)  # laid over the row's valid spec
    name: str | None = None  # metadata.name instead of the row's
    namespace: str | None = None  # metadata.namespace written into the manifest
    fix: bool = False  # then the row's valid manifest is applied and must become Ready at 2
    named: bool = True  # the refusal names the object (a strict-decoding error names only kind and field)


TARGET_RULE = "targetVersion must be 'latest' or a non-negative version number"
REFUSED = [
    Refused("source-both", ("source needs exactly one of configMaps or image",),
            {"source": {"image": {"image": "localhost/app-migrations:v2"}}}, fix=True),
    Refused("source-none", ("source needs exactly one of configMaps or image",), {"source": {"configMaps": DROP}}),
    Refused("target-negative", (TARGET_RULE,), {"targetVersion": -3}),
    Refused("target-minus-string", (TARGET_RULE,), {"targetVersion": "-1"}),
    Refused("target-v-prefix", (TARGET_RULE,), {"targetVersion": "v2"}),
    # kubectl's default --validate=strict: a misspelt field is refused, not silently dropped.
    Refused("target-typo-field", ('SchemaMigration in version "v1alpha1" cannot be handled',
                                  'unknown field "spec.targetVerison"'), {"targetVerison": 2}, fix=True, named=False),
    Refused("no-secret-ref", ("spec.database.secretRef: Required value",), {"database": {"secretRef": DROP}}),
    Refused("secret-name-uppercase", ("spec.database.secretRef.name: Invalid value: \"App_DB\"",),
            {"database": {"secretRef": {"name": "App_DB"}}}, fix=True),
    Refused("table-with-dash", ("spec.database.table: Invalid value: \"goose-db-version\"",),
            {"database": {"table": "goose-db-version"}}),
    Refused("configmaps-empty", ("spec.source.configMaps: Invalid value: 0",), {"source": {"configMaps": []}}),
    Refused("configmaps-33", ("spec.source.configMaps: Too many: 33: must have at most 32 items",),
            {"source": {"configMaps": [f"part-{i}" for i in range(33)]}}),
    Refused("configmap-name-uppercase", ("spec.source.configMaps[0]: Invalid value: \"App-Migrations\"",),
            {"source": {"configMaps": ["App-Migrations"]}}),
    Refused("lock-timeout-words", ("spec.lock.lockTimeout: Invalid value: \"10 seconds\"",),
            {"lock": {"lockTimeout": "10 seconds"}}),
    Refused("lease-too-short", ("spec.lock.leaseDurationSeconds: Invalid value: 2",
                                "should be greater than or equal to 5"), {"lock": {"leaseDurationSeconds": 2}}),
    Refused("deadline-too-short", ("spec.job.activeDeadlineSeconds: Invalid value: 5",
                                   "should be greater than or equal to 10"), {"job": {"activeDeadlineSeconds": 5}}),
    Refused("backoff-too-many", ("spec.job.backoffLimit: Invalid value: 11", "should be less than or equal to 10"),
            {"job": {"backoffLimit": 11}}),
    Refused("ttl-negative", ("spec.job.ttlSecondsAfterFinished: Invalid value: -1",),
            {"job": {"ttlSecondsAfterFinished": -1}}),
    Refused("cpu-with-a-space", ("spec.job.resources.limits.cpu: Invalid value: \"1 cpu\"",),
            {"job": {"resources": {"limits": {"cpu": "1 cpu"}}}}),
    Refused("approval-typo", ('spec.approval: Unsupported value: "Auto"',), {"approval": "Auto"}),
    Refused("lint-fail-on-typo", ('spec.lint.failOn: Unsupported value: "warn"',), {"lint": {"failOn": "warn"}}),
    Refused("rollout-gate-empty", ("rolloutGate names at least one Deployment or StatefulSet",), {"rolloutGate": {}}),
    # The chart's ValidatingAdmissionPolicy (the installer allowed localhost/app-migrations:v2 and the never-built
    # image of tests/operator_fixtures.py only).
    Refused("source-image-not-allowed", ("spec.source.image.image docker.io/library/busybox:1.36 is not an allowed "
                                         "image",),
            {"source": {"configMaps": DROP, "image": {"image": "docker.io/library/busybox:1.36"}}}, fix=True),
    # The name labels its Jobs (schemagate.io/migration), and a label value has at most 63 characters.
    Refused("name-too-long", ("metadata.name must be at most 63 characters",), name="x" * 64),
    Refused("namespace-mismatch", ('the namespace from the provided object "somewhere-else" does not match',),
            namespace="somewhere-else"),
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_refused_at_apply(case: Refused, kube_and_operator, refused_namespace, database_url):
    kube, operator = kube_and_operator
    with _row(kube, operator, refused_namespace, database_url, case.id) as row:
        row.secret({"url": database_url})
        row.files(GOOD)
        name = case.name or row.name
        out = row.app.kubectl("apply", "-f", "-", input=json.dumps(row.manifest(case.spec, name, case.namespace)),
                              check=False)
        assert out.returncode != 0, f"{case.id}: kubectl apply accepted it"
        named = (name if case.namespace is None else case.namespace,) if case.named else ()
        for words in (*case.says, *named):
            assert words in out.stderr, f"{case.id}: {words!r} not in {out.stderr!r}"
        assert not row.exists(name) and not row.jobs()
        if case.fix:
            row.apply()
            _ready(row, 2, [1, 2])


def test_a_configmap_over_1_mib_is_refused_and_the_schema_fits_in_two(kube_and_operator, refused_namespace,
                                                                      database_url):
    """A schema larger than a ConfigMap holds is refused by the apiserver (1 MiB); split across two
    ConfigMaps (spec.source.configMaps merges them) it migrates."""
    kube, operator = kube_and_operator
    # Comment lines are dropped by the parser: a big file, one statement.
    padding = "-- " + "x" * 76 + "\n"
    big = {"00001_users.sql": "-- +goose Up\n" + padding * 7000 + USERS.removeprefix("-- +goose Up\n"),
           "00002_orders.sql": "-- +goose Up\n" + padding * 7000 + ORDERS.removeprefix("-- +goose Up\n")}
    assert sum(len(v) for v in big.values()) > 1024 * 1024 > max(len(v) for v in big.values())
    with _row(kube, operator, refused_namespace, database_url, "configmap-too-big") as row:
        row.secret({"url": database_url})

        def configmap(name: str, data: dict[str, str]) -> str:
            return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})

        # `create`, not `apply`: apply would copy the data into an annotation, refused at 256 KiB first.
        out = row.app.kubectl("create", "-f", "-", input=configmap(row.cm, big), check=False)
        assert out.returncode != 0 and "1048576" in out.stderr and row.cm in out.stderr, out.stderr
        assert row.app.kubectl("get", "configmap", row.cm, check=False).returncode != 0
        for part, file in ((f"{row.cm}-1", "00001_users.sql"), (f"{row.cm}-2", "00002_orders.sql")):
            row.app.kubectl("create", "-f", "-", input=configmap(part, {file: big[file]}))
        row.apply({"source": {"configMaps": [f"{row.cm}-1", f"{row.cm}-2"]}})
        _ready(row, 2, [1, 2])


# --------------------------------------------------------------------------------------------------------
# Accepted, then stopped by the operator before anything runs.


@dataclass(frozen=True)
class Fix:
    files: dict[str, str] | None = None  # the ConfigMap's new content
    url: Callable[[str], str] | None = None  # the Secret's new URL, from the row's database URL
    spec: dict[str, Any] | None = None  # laid over the row's valid spec (None: the bad row's spec stays)
    version: int = 2
    versions: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Stalls:
    id: str
    reason: str
    says: tuple[str, ...]  # in the Stalled message; {ns}, {cm}, {db}, {name} are the row's objects
    files: dict[str, str] | None = field(default_factory=lambda: dict(GOOD))
    binary: dict[str, str] | None = None  # base64 binaryData of the ConfigMap
    url: Callable[[str], str] = lambda url: url  # the Secret's URL, from the row's database URL
    spec: dict[str, Any] = field(default_factory=dict)
    before: dict[str, str] | None = None  # applied first, to Ready, before the bad input
    fix: Fix | None = None
    hidden: tuple[str, ...] = ()  # besides the database password: never in status


def _file(path: str, text: str) -> dict[str, str]:
    return {path: text}


STALLED = [
    # Migration files (the engine's parser, run by the operator on the ConfigMap before any Job).
    Stalls("only-a-down-section", "InvalidMigrations",
           ("invalid migration 00001_users.sql:2: '-- +goose Down' before any '-- +goose Up' annotation",
            "(ConfigMap {ns}/{cm})"),
           _file("00001_users.sql", "-- users\n-- +goose Down\nDROP TABLE users;\n"), fix=Fix(files=GOOD)),
    Stalls("no-annotation-at-all", "InvalidMigrations",
           ("invalid migration 00001_users.sql:2: no '-- +goose Up' annotation", "(ConfigMap {ns}/{cm})"),
           _file("00001_users.sql", "-- users table, to do\n-- (nothing here yet)\n")),
    Stalls("statement-begin-unclosed", "InvalidMigrations",
           ("invalid migration 00002_orders.sql:2: failed to parse migration: missing '-- +goose StatementEnd'",
            "(ConfigMap {ns}/{cm})"),
           {**_file("00001_users.sql", USERS), **_file(
               "00002_orders.sql", "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION one() RETURNS int AS "
                                   "$$ SELECT 1 $$ LANGUAGE sql;\n")}),
    Stalls("down-inside-statement-begin", "InvalidMigrations",
           ("invalid migration 00002_orders.sql:4: '-- +goose Down' inside the '-- +goose StatementBegin' block "
            "opened on line 2", "(ConfigMap {ns}/{cm})"),
           {**_file("00001_users.sql", USERS), **_file(
               "00002_orders.sql", "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION one() RETURNS int AS "
                                   "$$ SELECT 1 $$ LANGUAGE sql;\n-- +goose Down\nDROP FUNCTION one;\n")}),
    Stalls("missing-semicolon", "InvalidMigrations",
           ("invalid migration 00002_orders.sql:2:", "unexpected unfinished SQL query",
            "CREATE TABLE orders (id bigint PRIMARY KEY)", "missing semicolon?", "(ConfigMap {ns}/{cm})"),
           {**_file("00001_users.sql", USERS), **_file(
               "00002_orders.sql", "-- +goose Up\nCREATE TABLE orders (id bigint PRIMARY KEY)\n"
                                   "-- +goose Down\nDROP TABLE orders;\n")}),
    Stalls("annotation-typo", "InvalidMigrations",
           ('invalid migration 00002_orders.sql:2: failed to parse annotation line "-- +goose NO TRANSACTIONS"',
            "not supported", "(ConfigMap {ns}/{cm})"),
           {**_file("00001_users.sql", USERS), **_file(
               "00002_orders.sql", "-- +goose Up\n-- +goose NO TRANSACTIONS\nCREATE TABLE orders (id int);\n")}),
    Stalls("two-up-annotations", "InvalidMigrations",
           ("invalid migration 00002_orders.sql:3: duplicate '-- +goose Up' annotations", "(ConfigMap {ns}/{cm})"),
           {**_file("00001_users.sql", USERS), **_file(
               "00002_orders.sql", "-- +goose Up\nCREATE TABLE orders (id int);\n-- +goose Up\nSELECT 1;\n")}),
    Stalls("indented-annotation", "InvalidMigrations",
           ('invalid migration 00002_orders.sql:3: failed to parse annotation line "  -- +goose Down"',
            "leading whitespace", "(ConfigMap {ns}/{cm})"),
           {**_file("00001_users.sql", USERS), **_file(
               "00002_orders.sql", "-- +goose Up\nCREATE TABLE orders (id int);\n  -- +goose Down\n"
                                   "DROP TABLE orders;\n")}),
    Stalls("envsub-variable-not-declared", "InvalidMigrations",
           ("invalid migration 00002_orders.sql:3: variable substitution failed: $APP_PASSWORD is not declared: "
            "declare it in the SchemaMigration's spec.job.env", "(ConfigMap {ns}/{cm})"),
           {**_file("00001_users.sql", USERS), **_file(
               "00002_orders.sql", "-- +goose Up\n-- +goose ENVSUB ON\nCREATE ROLE app LOGIN PASSWORD "
                                   "'${APP_PASSWORD?}';\n-- +goose Down\nDROP ROLE app;\n")}),
    # File names and versions.
    Stalls("duplicate-version", "InvalidMigrations",
           ("invalid migration 00002_orders_v2.sql: found duplicate migration version 2: existing "
            "00002_orders.sql, current 00002_orders_v2.sql", "(ConfigMap {ns}/{cm})"),
           {**GOOD, "00002_orders_v2.sql": AUDIT}),
    Stalls("version-zero", "InvalidMigrations",
           ("invalid migration 00000_init.sql:", "migration version must be greater than zero",
            "(ConfigMap {ns}/{cm})"),
           {**GOOD, "00000_init.sql": AUDIT}),
    Stalls("version-not-a-number", "InvalidMigrations",
           ("invalid migration v3_audit.sql:", 'parsing "v3": invalid syntax', "(ConfigMap {ns}/{cm})"),
           {**GOOD, "v3_audit.sql": AUDIT}),
    Stalls("go-migration", "InvalidMigrations",
           ("invalid migration 00003_backfill.go: Go migrations are not supported", "(ConfigMap {ns}/{cm})"),
           {**GOOD, "00003_backfill.go": "package migrations\n"}),
    Stalls("upper-case-extension", "NoMigrationFiles",
           ("ConfigMap {ns}/{cm} holds no goose migration file", "keys found: 00001_users.SQL, 00002_orders.SQL"),
           {"00001_users.SQL": USERS, "00002_orders.SQL": ORDERS}, fix=Fix(files=GOOD)),
    Stalls("not-utf8", "InvalidMigrations",
           ("file 00002_orders.sql in ConfigMap {ns}/{cm} is not UTF-8 text (it is under binaryData)",),
           _file("00001_users.sql", USERS),
           binary={"00002_orders.sql": base64.b64encode(b"-- +goose Up\n-- caf\xe9 (Latin-1)\nCREATE TABLE orders "
                                                       b"(id int);\n").decode()}),
    # The spec against the files and the database.
    Stalls("target-not-among-files", "TargetNotFound",
           ("targetVersion 5 is not among the migration files (newest is 2)",), spec={"targetVersion": 5},
           fix=Fix(spec={"targetVersion": 2})),
    Stalls("out-of-order-file", "MissingMigrations",
           ("1 migration(s) older than the database's version 3 were never applied: 00002_orders.sql",),
           {"00001_users.sql": USERS, "00002_orders.sql": ORDERS, "00003_audit.sql": AUDIT},
           before={"00001_users.sql": USERS, "00003_audit.sql": AUDIT},
           fix=Fix(files={"00001_users.sql": USERS, "00003_audit.sql": AUDIT, "00004_orders.sql": ORDERS},
                   version=4, versions=(1, 3, 4))),
    Stalls("backup-claim-missing", "BackupClaimNotAllowed",
           ("PersistentVolumeClaim {ns}/no-such-claim not found",), spec={"backup": {"claimName": "no-such-claim"}},
           fix=Fix(spec={})),
    # A value the CRD cannot check (any string is a label key to it); the Job's validation refuses it.
    Stalls("node-selector-bad-key", "JobRejected",
           ("cannot create Job {ns}/", "nodeSelector", "bad key", "nothing was run"),
           spec={"job": {"nodeSelector": {"bad key": "x"}}}, fix=Fix(spec={})),
    # The Secret.
    Stalls("secret-key-missing", "SecretNotFound", ("Secret {ns}/{db} has no key 'dsn'",),
           spec={"database": {"secretRef": {"key": "dsn"}}}, fix=Fix(spec={})),
    Stalls("secret-value-empty", "SecretNotFound", ("Secret {ns}/{db} key 'url' is empty",), url=lambda _: ""),
    Stalls("secret-holds-json", "InvalidDatabaseURL",
           ("Secret {ns}/{db} key 'url' is not a PostgreSQL URL",),
           url=lambda _: '{"host": "db", "password": "pw-in-json-4711"}', hidden=("pw-in-json-4711",)),
    # The URL.
    Stalls("url-mysql-scheme", "InvalidDatabaseURL", ("Secret {ns}/{db} key 'url' is not a PostgreSQL URL",),
           url=lambda url: _with(url, scheme="mysql")),
    Stalls("url-bad-percent-escape", "InvalidDatabaseURL", ("Secret {ns}/{db} key 'url' is not a PostgreSQL URL",),
           url=lambda url: _with(url, password="s3cr%zz-pw"), hidden=("s3cr%zz-pw",)),
    Stalls("url-unknown-parameter", "InvalidDatabaseURL", ("Secret {ns}/{db} key 'url' is not a PostgreSQL URL",),
           url=lambda url: _with(url, query="sslmod=require")),
    Stalls("url-port-not-a-number", "InvalidDatabaseURL",
           ("Secret {ns}/{db} key 'url' is not a usable PostgreSQL URL: its port is not a number",
            "nothing was dialled"), url=lambda url: _with(url, port="54x32"), hidden=("54x32",),
           fix=Fix(url=lambda url: url)),
    Stalls("url-connect-timeout-not-a-number", "InvalidDatabaseURL",
           ("Secret {ns}/{db} key 'url' is not a usable PostgreSQL URL: its connect_timeout is not a number",),
           url=lambda url: _with(url, query="connect_timeout=soon")),
    Stalls("url-database-missing", "ConnectionFailed", ('database "no_such_db" does not exist', "/no_such_db:"),
           url=lambda url: _with(url, dbname="no_such_db"), fix=Fix(url=lambda url: url)),
    Stalls("url-without-password", "AuthenticationFailed", ("cannot log in to database", "no password supplied"),
           url=lambda url: _with(url, no_password=True)),
    Stalls("url-requires-ssl", "ConnectionFailed", ("server does not support SSL, but SSL was required",),
           url=lambda url: _with(url, query="sslmode=require")),
]


@pytest.mark.parametrize("case", STALLED, ids=lambda c: c.id)
def test_stalled_before_anything_runs(case: Stalls, kube_and_operator, stalled_namespace, database_url):
    kube, operator = kube_and_operator
    with _row(kube, operator, stalled_namespace, database_url, case.id) as row:
        before: list[int] = []
        row.secret({"url": database_url})
        if case.before is not None:
            row.files(case.before)
            row.apply()
            before = sorted(int(f.split("_")[0]) for f in case.before)
            _ready(row, before[-1], before)
        jobs = len(row.jobs())
        row.secret({"url": case.url(database_url)})
        row.files(case.files, case.binary)
        row.apply(case.spec)
        stalled = row.stalled(case.reason)
        for words in row.says(case.says):
            assert words in stalled["message"], f"{case.id}: {words!r} not in {stalled['message']!r}"
        ready = row.app.condition("Ready", name=row.name)
        assert (ready["status"], ready["reason"]) == ("False", case.reason)
        status = row.app.status(row.name)
        assert status["phase"] == "Failed" and status["observedGeneration"] == row.app.get(row.name)["metadata"]["generation"]
        # Nothing ran: no new Job, and the database holds what it held (no tracking table on a fresh one).
        assert len(row.jobs()) == jobs and row.app.db_versions() == before
        said = json.dumps(status)
        for secret in (_password(database_url), *case.hidden):
            assert secret not in said, f"{case.id}: {secret!r} is in status"
        if case.fix is not None:
            if case.fix.files is not None:
                row.files(case.fix.files)
            if case.fix.url is not None:
                row.secret({"url": case.fix.url(database_url)})
            row.apply(case.spec if case.fix.spec is None else case.fix.spec)
            _ready(row, case.fix.version, list(case.fix.versions))


# --------------------------------------------------------------------------------------------------------
# The Job runs and a file fails part-way.


def _ddl(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@contextlib.contextmanager
def _lock_users(url: str) -> Iterator[None]:
    """Someone's long transaction holding users (a report, a stuck session), released when the block ends."""
    with psycopg.connect(url) as conn:
        conn.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        yield
        conn.rollback()


def _resolve_interrupted(url: str, files: dict[str, str], version: int, where: Path) -> None:
    """The documented action after a NO TRANSACTION file failed part-way: undo what of it ran (done by the
    caller), then tell schemagate it was checked."""
    from schemagate.cli import main

    where.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (where / name).write_text(text)
    assert main(["migrate", "--database-url", url, "--dir", str(where), "resolve-interrupted", str(version)]) == 0


@dataclass(frozen=True)
class FailsMidRun:
    id: str
    reason: str
    says: tuple[str, ...]  # besides "Job {ns}/<the Job>" … the Job's name is checked separately
    files: dict[str, str]
    versions: tuple[int, ...]  # what the database holds after the failed run
    absent: tuple[str, ...]  # tables the failed file's transaction would have made
    fix: Fix
    present: tuple[str, ...] = ()  # what a NO TRANSACTION file's finished statements left, as status says
    spec: dict[str, Any] = field(default_factory=dict)
    before: dict[str, str] | None = None  # applied first, to Ready
    hold: Callable[[str], contextlib.AbstractContextManager[None]] | None = None  # around the failing run
    retry: bool = False  # the fix is the retry annotation (same plan), after `hold` ended
    undo: tuple[str, ...] = ()  # SQL a person runs by hand before resolving a NO TRANSACTION file
    resolve: int | None = None  # then `schemagate migrate resolve-interrupted VERSION`


ORDERS_BROKEN = ("-- +goose Up\nCREATE TABLE orders (id bigint PRIMARY KEY);\n"
                 "ALTER TABLE no_such_table ADD COLUMN x int;\n-- +goose Down\nDROP TABLE orders;\n")
ORDERS_NO_TX_BROKEN = ("-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE orders (id bigint PRIMARY KEY);\n"
                       "CREATE INDEX CONCURRENTLY orders_x ON orders (no_such_column);\n"
                       "-- +goose Down\nDROP TABLE orders;\n")
ORDERS_EMAIL = ("-- +goose Up\nALTER TABLE users ADD COLUMN email text;\n"
                "-- +goose Down\nALTER TABLE users DROP COLUMN email;\n")
SLOW = "-- +goose Up\nSELECT pg_sleep(60);\nCREATE TABLE slow (id int);\n-- +goose Down\nDROP TABLE slow;\n"

MID_RUN = [
    FailsMidRun("second-of-three-files-fails", "MigrationFailed",
                ("00002_orders.sql: up statement 2 (line 3: ALTER TABLE no_such_table ADD COLUMN x int;) failed",
                 'relation "no_such_table" does not exist', "SQLSTATE 42P01", "rolled back, no version row written",
                 "stopped after 1 of 3 step(s)"),
                {"00001_users.sql": USERS, "00002_orders.sql": ORDERS_BROKEN, "00003_audit.sql": AUDIT},
                versions=(1,), absent=("orders", "audit"),
                fix=Fix(files={"00001_users.sql": USERS, "00002_orders.sql": ORDERS, "00003_audit.sql": AUDIT},
                        version=3, versions=(1, 2, 3))),
    # statement 1 of a NO TRANSACTION file stays applied: status says so, and every later run refuses until
    # someone has looked (undo by hand, resolve-interrupted), as docs/operator.md "Failures" says.
    FailsMidRun("no-transaction-file-fails-part-way", "MigrationFailed",
                ("00002_orders.sql: up statement 2 (line 4: CREATE INDEX CONCURRENTLY", "no_such_column",
                 "SQLSTATE 42703", "NO TRANSACTION: statement 1 of this file stays applied, no version row written"),
                {"00001_users.sql": USERS, "00002_orders.sql": ORDERS_NO_TX_BROKEN}, versions=(1,), absent=(),
                present=("orders",),
                undo=("DROP TABLE orders",), resolve=2, fix=Fix(files=GOOD)),
    FailsMidRun("lock-timeout-exceeded", "MigrationFailed",
                ("00002_email.sql: up statement 1 (line 2: ALTER TABLE users ADD COLUMN email text;) failed",
                 "canceling statement due to lock timeout", "SQLSTATE 55P03", "rolled back"),
                {"00001_users.sql": USERS, "00002_email.sql": ORDERS_EMAIL}, versions=(1,), absent=(),
                spec={"lock": {"lockTimeout": "500ms"}}, before={"00001_users.sql": USERS}, hold=_lock_users,
                retry=True, fix=Fix()),
    # activeDeadlineSeconds stops the runner mid-statement: its own words, prefixed by the Job controller's.
    # The fix is a faster file (raising the deadline instead would rerun the slow one first).
    FailsMidRun("active-deadline-exceeded", "Interrupted",
                ("DeadlineExceeded: interrupted by a signal while running 00001_slow.sql",
                 "its transaction rolled back"),
                {"00001_slow.sql": SLOW}, versions=(), absent=("slow",), spec={"job": {"activeDeadlineSeconds": 10}},
                fix=Fix(files={"00001_slow.sql": SLOW.replace("pg_sleep(60)", "pg_sleep(1)")}, version=1,
                        versions=(1,))),
    # A table in a schema nobody created: the runner cannot create goose's table, nothing is applied.
    FailsMidRun("tracking-table-schema-missing", "DatabaseError", ('schema "migrations" does not exist',),
                dict(GOOD), versions=(), absent=("users",), spec={"database": {"table": "migrations.goose_db_version"}},
                fix=Fix(spec={})),
]


@pytest.mark.parametrize("case", MID_RUN, ids=lambda c: c.id)
def test_fails_mid_run_leaves_nothing_half_applied(case: FailsMidRun, kube_and_operator, mid_run_namespace,
                                                   database_url, tmp_path):
    kube, operator = kube_and_operator
    with _row(kube, operator, mid_run_namespace, database_url, case.id) as row:
        row.secret({"url": database_url})
        if case.before is not None:
            row.files(case.before)
            row.apply()
            _ready(row, 1, [1])
        held = case.hold(database_url) if case.hold else contextlib.nullcontext()
        with held:
            if case.before is None:
                row.files(case.files)
                row.apply(case.spec)
            else:  # the spec first: the new files under the old spec would start a Job of their own
                row.apply(case.spec)
                row.files(case.files)
            stalled = row.stalled(case.reason, timeout=150)
        failed = wait_until("the failed run in history", lambda: next(
            (r for r in row.app.status(row.name).get("history") or [] if r.get("outcome") == "Failed"), None))
        assert stalled["message"].startswith(f"Job {failed['job']}"), stalled["message"]
        for words in row.says(case.says):
            assert words in stalled["message"], f"{case.id}: {words!r} not in {stalled['message']!r}"
        assert row.app.db_versions() == list(case.versions)
        assert len(row.jobs()) == (2 if case.before else 1)  # one Job for the failed plan, no retry loop
        for table in case.absent:
            assert not row.app.table_exists(table), f"{case.id}: {table} exists"
        for table in case.present:
            assert row.app.table_exists(table), f"{case.id}: {table} is missing"
        assert _password(database_url) not in json.dumps(row.app.status(row.name))

        if case.undo or case.resolve is not None:
            _ddl(database_url, *case.undo)
            _resolve_interrupted(database_url, case.files, case.resolve or 0, tmp_path / "migrations")
        if case.retry:
            row.app.kubectl("annotate", f"smig/{row.name}", f"schemagate.io/retry={uuid.uuid4().hex[:8]}")
        # One change per fix: a file and a spec changed together could start a Job between the two.
        assert case.fix.files is None or case.fix.spec is None
        if case.fix.files is not None:
            row.files(case.fix.files)
        if case.fix.spec is not None:
            row.apply(case.fix.spec)
        _ready(row, case.fix.version, list(case.fix.versions))


# --------------------------------------------------------------------------------------------------------
# A namespace the operator does not act in.


def test_a_schemamigration_outside_the_watched_namespaces_gets_no_status_and_no_job(kube_and_operator,
                                                                                    database_url):
    """The chart names the namespaces the operator acts in (watch.namespaces); elsewhere it has no right to
    read or write, so the object stays as applied: no status, no Job, which `kubectl get smig -A` shows as
    an empty PHASE (docs/operator.md, Failures). Nothing here can fix it but the chart's values."""
    kube, operator = kube_and_operator
    namespace = f"badin-unwatched-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", namespace)
    try:
        row = Row(App(kube, namespace, operator, database_url), "elsewhere")
        row.secret({"url": database_url})
        row.files(GOOD)
        row.apply()
        # Five of the operator's resyncs: in a namespace it watches, status is there within one or two.
        time.sleep(5)
        assert row.app.status(row.name) == {} and row.jobs() == [] and row.app.db_versions() == []
        listed = kube.kubectl("get", "smig", "-A", "--no-headers").stdout.splitlines()
        line = next(ln.split() for ln in listed if ln.split()[:2] == [namespace, "elsewhere"])
        assert len(line) == 3, line  # NAMESPACE NAME AGE: no CURRENT, TARGET, PHASE or READY
    finally:
        kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
