"""Two teams, two namespaces, each a user with only SchemaMigration, ConfigMap and Secret rights in its own
namespace (as a platform team would grant them). Whatever they write, the operator runs nothing the
installer did not allow and says nothing it read: each attempt fails, and no status, Event or operator log
line carries a Secret's value.

ENVSUB of DATABASE_URL (issue 17, item 4: only variables the SchemaMigration declares) is in
tests/e2e/test_job_env.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.parse
from typing import Any

import pytest

from kube_fixtures import wait_until
from migration_files import USERS as V1
from operator_fixtures import App

pytestmark = pytest.mark.e2e

TEAM_RULES = [{"apiGroups": ["schemagate.io"], "resources": ["schemamigrations"], "verbs": ["*"]},
              {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["*"]}]


class Team:
    """A user bound to TEAM_RULES in `app`'s namespace; kubectl runs as that user (impersonation)."""

    def __init__(self, app: App, user: str):
        self.app, self.user, self.namespace = app, user, app.namespace
        app.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "team"},
                   "rules": TEAM_RULES},
                  {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "team"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "team"},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.app.kube.kubectl("--as", self.user, "-n", self.namespace, *args, **kw)

    def can(self, verb: str, resource: str, namespace: str | None = None) -> bool:
        out = self.app.kube.kubectl("auth", "can-i", verb, resource, "--as", self.user,
                                    "-n", namespace or self.namespace, check=False)
        return out.stdout.strip() == "yes"

    def apply(self, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", input=json.dumps(doc), check=False)

    def schemamigration(self, name: str, secret: str = "db", key: str = "url", **spec: Any) -> dict[str, Any]:
        return {"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration", "metadata": {"name": name},
                "spec": {"database": {"secretRef": {"name": secret, "key": key}},
                         "source": {"configMaps": ["migrations"]}, **spec}}


@pytest.fixture
def teams(kube, own_operator, database_url):
    """Team A in one fresh namespace with its own database; team B in another. Their operator is a release
    of the test's own: the test takes away its admission policy for a while, and reads its whole log."""
    a = App(kube, own_operator.take_namespace(), own_operator, database_url)
    b = App(kube, own_operator.take_namespace(), own_operator, "")
    yield Team(a, "team-a"), Team(b, "team-b")


def _stalled(app: App, name: str, reason: str) -> dict[str, Any]:
    return app.wait_condition("Stalled", "True", reason, name=name)


def _everything_said(team: Team) -> str:
    """Every status and Event in the team's namespace, and the operator's whole log."""
    app = team.app
    smigs = app.kubectl("get", "schemamigrations", "-o", "json").stdout
    events = app.kubectl("get", "events", "-o", "json").stdout
    return smigs + events + app.operator.logs()


def test_two_teams_cannot_make_the_operator_run_or_say_what_the_installer_did_not_allow(teams, kube):
    a, b = teams
    # What the users may do themselves: their own namespace's SchemaMigrations, ConfigMaps and Secrets.
    assert a.can("create", "schemamigrations") and a.can("create", "secrets")
    for verb, resource in [("create", "jobs"), ("create", "pods"), ("patch", "pods"), ("patch", "pods/status"),
                           ("create", "serviceaccounts/token"), ("create", "leases"), ("get", "serviceaccounts")]:
        assert not a.can(verb, resource), f"team-a may {verb} {resource}"
    for verb, resource in [("get", "secrets"), ("create", "schemamigrations"), ("get", "configmaps")]:
        assert not a.can(verb, resource, b.namespace), f"team-a may {verb} {resource} in team-b's namespace"
    assert a.kubectl("get", "secrets", "-n", b.namespace, check=False).returncode != 0

    password = urllib.parse.urlsplit(a.app.database_url).password
    assert password
    assert a.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "migrations"},
                    "data": V1}).returncode == 0
    assert a.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                    "stringData": {"url": a.app.database_url}}).returncode == 0

    # The allowed defaults migrate.
    assert a.apply(a.schemamigration("plain")).returncode == 0
    a.app.wait_ready(1, name="plain")

    # Refused at admission: an image, a ServiceAccount the installer did not allow. Nothing is created.
    for name, job, said in [("image", {"image": "evil.example/pwn:1"}, "is not an allowed runner image"),
                            ("account", {"serviceAccountName": "default"}, "is not an allowed ServiceAccount")]:
        refused = a.apply(a.schemamigration(name, job=job))
        assert refused.returncode != 0 and said in refused.stderr, refused.stderr
        assert a.kubectl("get", "schemamigration", name, check=False).returncode != 0

    # With the admission policy out of the way (an admin removed it), the operator refuses the same.
    binding = a.app.operator.admission_binding
    saved = json.loads(kube.kubectl("get", "validatingadmissionpolicybinding", binding, "-o", "json").stdout)
    kube.kubectl("delete", "validatingadmissionpolicybinding", binding)
    try:
        def admitted() -> bool:
            return a.apply(a.schemamigration("image", job={"image": "evil.example/pwn:1"})).returncode == 0
        wait_until("the apiserver no longer enforcing the policy", admitted, timeout=30)
        assert a.apply(a.schemamigration("account", job={"serviceAccountName": "default"})).returncode == 0
        for name, reason in [("image", "ImageNotAllowed"), ("account", "ServiceAccountNotAllowed")]:
            stalled = _stalled(a.app, name, reason)
            assert "An admin allows" in stalled["message"] and "nothing was created" in stalled["message"], stalled
            assert not a.app.jobs(name), name
    finally:
        for field in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            saved["metadata"].pop(field, None)
        saved.pop("status", None)
        kube.kubectl("create", "-f", "-", input=json.dumps(saved))

    # A claim nobody labelled for backups (an admin's PVC in the team's namespace): refused, no Job.
    a.app.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "someones-data"},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}},
                          "storageClassName": "none"}})
    assert a.apply(a.schemamigration("claim", backup={"claimName": "someones-data"})).returncode == 0
    _stalled(a.app, "claim", "BackupClaimNotAllowed")
    assert not a.app.jobs("claim")

    # A ServiceAccount token the team had the token controller put in a Secret of its own, given as the
    # database URL: refused as not a URL, without a character of it anywhere.
    assert a.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                    "metadata": {"name": "stolen", "annotations": {
                        "kubernetes.io/service-account.name": "schemagate-migration"}}}).returncode == 0
    token = wait_until("the token controller filling the Secret", lambda: (json.loads(
        a.app.kubectl("get", "secret", "stolen", "-o", "json").stdout).get("data") or {}).get("token"), timeout=30)
    token = base64.b64decode(token).decode()
    assert a.apply(a.schemamigration("token", secret="stolen", key="token")).returncode == 0
    stalled = _stalled(a.app, "token", "InvalidDatabaseURL")
    assert "not a PostgreSQL URL" in stalled["message"]
    assert not a.app.jobs("token")

    # A probe of a port that is not PostgreSQL (the apiserver's): a connection failure, no Job, and
    # nothing of what that port answered.
    server = urllib.parse.urlsplit(json.loads(kube.kubectl("config", "view", "--minify", "-o", "json").stdout)
                                   ["clusters"][0]["cluster"]["server"])
    probe_url = f"postgresql://u:p@{server.hostname}:{server.port}/x?connect_timeout=3"
    assert a.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "probe"},
                    "stringData": {"url": probe_url}}).returncode == 0
    assert a.apply(a.schemamigration("probe", secret="probe")).returncode == 0
    stalled = _stalled(a.app, "probe", "ConnectionFailed")
    assert not a.app.jobs("probe")
    for answer in ("HTTP/", "Bad Request", "Client sent an HTTP request"):
        assert answer not in stalled["message"], stalled["message"]

    # Team B's namespace: team A cannot reach into it, and B's own SchemaMigration goes on untouched.
    assert a.kubectl("-n", b.namespace, "apply", "-f", "-", input=json.dumps(a.schemamigration("x")),
                     check=False).returncode != 0

    said = _everything_said(a)
    assert password not in said
    # A JWT: its header is public, its payload and signature are what would be a leak.
    _, payload, signature = token.split(".")
    assert payload[:24] not in said and signature[:24] not in said
