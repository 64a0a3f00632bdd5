"""The rendered migration Job: deterministic, owned, restricted, credentials only by reference."""

from __future__ import annotations

import functools
import json

from schemagate.controller.jobs import render_job
from tests.unit.conftest import job_request, smig_spec

OBJ = {"metadata": {"name": "app", "namespace": "team", "uid": "u-1", "generation": 3}}


spec = functools.partial(smig_spec, database={"secretRef": {"name": "app-db"}},
                         source={"configMaps": ["m-a", "m-b"]})
request = functools.partial(job_request, name="app-g3-abcdef12", generation=3,
                            lease_name="schemagate-db-0123456789abcdef", lease_holder="team/app-g3-abcdef12")


def pod_of(job):
    return job["spec"]["template"]["spec"]


def test_same_request_renders_the_same_job():
    assert render_job(OBJ, spec(), request()) == render_job(OBJ, spec(), request())


def test_job_is_owned_by_the_schemamigration():
    job = render_job(OBJ, spec(), request())
    assert job["metadata"]["name"] == "app-g3-abcdef12" and job["metadata"]["namespace"] == "team"
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "schemagate.io/v1alpha1", "kind": "SchemaMigration", "name": "app", "uid": "u-1",
                     "controller": True, "blockOwnerDeletion": True}
    assert job["metadata"]["labels"]["schemagate.io/migration"] == "app"


def test_database_url_only_through_secret_key_ref():
    job = render_job(OBJ, spec(database={"secretRef": {"name": "app-db", "key": "dsn"}}), request())
    (container,) = pod_of(job)["containers"]
    (db,) = [e for e in container["env"] if e["name"] == "DATABASE_URL"]
    assert db == {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "app-db", "key": "dsn"}}}
    assert "postgres" not in json.dumps(container["command"])


def test_configmaps_are_merged_read_only():
    pod = pod_of(render_job(OBJ, spec(), request()))
    (volume,) = [v for v in pod["volumes"] if v["name"] == "migrations"]
    assert [s["configMap"]["name"] for s in volume["projected"]["sources"]] == ["m-a", "m-b"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "migrations"]
    assert mount["readOnly"] is True and mount["mountPath"] == "/migrations"


def test_pod_meets_restricted_pod_security():
    pod = pod_of(render_job(OBJ, spec(source={"image": {"image": "registry/app-migrations:1"}}), request()))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["containers"] + pod["initContainers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
    for volume in pod["volumes"]:
        assert not {"hostPath"} & volume.keys()
    # The runner's environment is the Job's own: no variable per Service of the team's namespace.
    assert pod["enableServiceLinks"] is False


def test_runner_command_holds_the_lease_and_writes_its_result_as_termination_message():
    container = pod_of(render_job(OBJ, spec(targetVersion=5, lock={"lockTimeout": "3s",
                                                                  "leaseDurationSeconds": 20}), request(target=5)))["containers"][0]
    cmd = container["command"]
    assert cmd[:2] == ["schemagate", "migrate"] and cmd[-2:] == ["up-to", "5"]
    opts = {a: b for a, b in zip(cmd, cmd[1:]) if a.startswith("--") and not b.startswith("--")}
    assert opts["--lease-name"] == "schemagate-db-0123456789abcdef" and opts["--lease-namespace"] == "team"
    assert opts["--lease-holder"] == "team/app-g3-abcdef12" and opts["--lease-duration"] == "20"
    assert opts["--lock-timeout"] == "3s" and opts["--table"] == "goose_db_version"
    assert "--json" in cmd and opts.get("--result-file") == container["terminationMessagePath"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_job_settings_are_passed_through():
    s = spec(job={"image": "reg/schemagate:1.2", "serviceAccountName": "migrator", "backoffLimit": 2,
                  "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 60,
                  "resources": {"limits": {"memory": "256Mi", "cpu": 1}},
                  "tolerations": [{"key": "db", "operator": "Exists", "effect": "NoSchedule"}],
                  "nodeSelector": {"pool": "ops"}})
    job = render_job(OBJ, s, request())
    pod = pod_of(job)
    assert pod["containers"][0]["image"] == "reg/schemagate:1.2"
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "256Mi", "cpu": 1}}
    assert pod["serviceAccountName"] == "migrator" and pod["nodeSelector"] == {"pool": "ops"}
    assert pod["tolerations"] == [{"key": "db", "operator": "Exists", "effect": "NoSchedule"}]
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"], job["spec"]["ttlSecondsAfterFinished"]) == (
        2, 600, 60)
    assert pod["restartPolicy"] == "Never"


def test_default_image_when_spec_has_none():
    assert pod_of(render_job(OBJ, spec(), request()))["containers"][0]["image"] == "schemagate:dev"


def test_image_source_copies_sql_files_with_paths_as_arguments():
    pod = pod_of(render_job(OBJ, spec(source={"image": {"image": "registry/app-migrations:1", "path": "/opt/m $x"}}),
                            request()))
    (init,) = pod["initContainers"]
    assert init["image"] == "registry/app-migrations:1"
    assert init["command"][-2:] == ["/opt/m $x", "/work"] and "$x" not in init["command"][2]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "migrations"]
    assert "emptyDir" in volume
    assert init["volumeMounts"] == [{"name": "migrations", "mountPath": "/work"}]
