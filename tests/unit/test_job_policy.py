"""The Job for production policy: rollback and accept-checksum verbs, the backup claim and file."""

from __future__ import annotations

import functools

from schemagate.controller.jobs import render_job
from tests.unit.conftest import job_request, smig_spec

OBJ = {"metadata": {"name": "app", "namespace": "team", "uid": "u-1", "generation": 3}}


spec = functools.partial(smig_spec, database={"secretRef": {"name": "app-db"}})
request = functools.partial(job_request, name="app-g3-abcdef12", generation=3, target=2, lease_name="lease",
                            lease_holder="team/app-g3-abcdef12")


def container(job):
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c


def test_rollback_runs_down_to_the_target():
    assert container(render_job(OBJ, spec(), request(command="down")))["command"][-2:] == ["down-to", "2"]


def test_accept_checksum_names_the_version():
    assert container(render_job(OBJ, spec(), request(command="accept-checksum")))["command"][-2:] == [
        "accept-checksum", "2"]


def test_backup_mounts_the_claim_and_dumps_before_the_verb():
    job = render_job(OBJ, spec(backup={"claimName": "db-backups"}), request(backup_file="app-g3-abcdef12.dump"))
    pod = job["spec"]["template"]["spec"]
    assert {"name": "backup", "persistentVolumeClaim": {"claimName": "db-backups"}} in pod["volumes"]
    c = container(job)
    assert {"name": "backup", "mountPath": "/backup"} in c["volumeMounts"]
    cmd = c["command"]
    assert cmd[cmd.index("--backup-file") + 1] == "/backup/app-g3-abcdef12.dump"
    assert cmd[-2:] == ["up-to", "2"]
    assert pod["securityContext"]["fsGroup"] == 65532  # the runner's group may write the claim


def test_no_backup_no_claim():
    job = render_job(OBJ, spec(), request())
    assert not any("persistentVolumeClaim" in v for v in job["spec"]["template"]["spec"]["volumes"])
    assert "--backup-file" not in container(job)["command"]
