"""The pod runner's pure rules (no cluster): image mapping, env, path convention, status."""

from __future__ import annotations

import base64

import pytest

from devenv import images, podenv, podstatus
from devenv.podpaths import PathMap


@pytest.mark.parametrize("image, name", [
    ("schemagate:dev", "schemagate"),
    ("ghcr.io/x/schemagate:0.1.0", "schemagate"),
    ("localhost:5000/a/b/schemagate@sha256:abc", "schemagate"),
    ("registry:5000/schemagate", "schemagate"),
    ("busybox", "busybox"),
    ("ghcr.io/x/schemagate-web:1", "schemagate-web"),
])
def test_repository_name(image: str, name: str):
    assert images.repository_name(image) == name


def test_default_mapping_is_our_image_only():
    rules = images.default_rules()
    assert images.lookup("ghcr.io/x/schemagate:0.1.0", rules).entrypoint == ("schemagate",)
    assert images.lookup("ghcr.io/x/schemagate-web:1", rules) is None
    assert images.lookup("nginx", rules) is None


def test_mapping_from_env_and_bad_json():
    rules = images.rules_from_env({"SCHEMAGATE_IMAGE_MAP": '[{"match": "py*", "entrypoint": ["python3"]}]'})
    assert images.lookup("python:3.11", rules).entrypoint == ("python3",)
    with pytest.raises(ValueError, match="SCHEMAGATE_IMAGE_MAP"):
        images.rules_from_env({"SCHEMAGATE_IMAGE_MAP": '{"match": 1}'})


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "a"}},
       "spec": {"nodeName": "n", "serviceAccountName": "sa"}}
SECRET = {"data": {"password": base64.b64encode(b"pw").decode(), "user": base64.b64encode(b"u1").decode()}}
CM = {"data": {"mode": "fast"}}


def lookups(secret=SECRET, cm=CM):
    return dict(secrets=lambda ns, n: secret if n == "db" else None,
                configmaps=lambda ns, n: cm if n == "cfg" else None)


def test_env_sources_and_expansion():
    container = {"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}], "env": [
        {"name": "A", "value": "1"},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "x", "optional": True}}},
        {"name": "URL", "value": "$(NAME).$(NS):$(A) $$(A) $(UNDEFINED)"},
    ]}
    env = podenv.resolve_env(POD, container, **lookups())
    assert env == {"CFG_mode": "fast", "A": "1", "PW": "pw", "MODE": "fast", "NAME": "p", "NS": "ns",
                   "APP": "a", "URL": "p.ns:1 $(A) $(UNDEFINED)"}


@pytest.mark.parametrize("ref, message", [
    ({"secretKeyRef": {"name": "gone", "key": "x"}}, 'secret "gone" not found'),
    ({"secretKeyRef": {"name": "db", "key": "nokey"}}, "couldn't find key nokey in secret ns/db"),
    ({"configMapKeyRef": {"name": "cfg", "key": "nokey"}}, "couldn't find key nokey in configmap ns/cfg"),
])
def test_missing_reference_is_a_container_config_error(ref, message):
    with pytest.raises(podenv.ContainerConfigError, match=message):
        podenv.resolve_env(POD, {"env": [{"name": "X", "valueFrom": ref}]}, **lookups())


def test_path_convention():
    paths = PathMap.build({"/migrations": "/h/vol/sql", "/migrations/extra": "/h/vol/extra",
                           "/dev/termination-log": "/h/c/term", "/etc/db/": "/h/vol/db"})
    assert paths.rewrite("/migrations") == "/h/vol/sql"
    assert paths.rewrite("/migrations/001.sql") == "/h/vol/sql/001.sql"
    assert paths.rewrite("/migrations/extra/x.sql") == "/h/vol/extra/x.sql"  # longest mount wins
    assert paths.rewrite("--dir=/migrations") == "--dir=/h/vol/sql"
    assert paths.rewrite("/dev/termination-log") == "/h/c/term"
    assert paths.rewrite("/etc/db/url") == "/h/vol/db/url"
    assert paths.rewrite("/migrationsX") == "/migrationsX"
    assert paths.rewrite("relative/migrations") == "relative/migrations"
    assert paths.rewrite("echo /migrations") == "echo /migrations"  # not a whole path: left alone


def cs(name, state, restarts=0):
    c = podstatus.ContainerState(name, "img", state=state, restart_count=restarts)
    return c


RUNNING = {"running": {"startedAt": "t"}}


def done(code):
    return {"terminated": {"exitCode": code}}


@pytest.mark.parametrize("policy, init, containers, init_done, phase", [
    ("Never", [], [cs("a", RUNNING)], True, "Running"),
    ("Never", [], [cs("a", done(0))], True, "Succeeded"),
    ("Never", [], [cs("a", done(0)), cs("b", done(2))], True, "Failed"),
    ("Never", [], [cs("a", done(0)), cs("b", RUNNING)], True, "Running"),
    ("OnFailure", [], [cs("a", done(0))], True, "Succeeded"),
    ("OnFailure", [], [cs("a", {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=1)], True, "Running"),
    ("Always", [], [cs("a", done(0))], True, "Running"),
    ("Never", [cs("i", done(1))], [cs("a", {"waiting": {}})], False, "Failed"),
    ("OnFailure", [cs("i", RUNNING)], [cs("a", {"waiting": {}})], False, "Pending"),
    ("Never", [], [cs("a", {"waiting": {"reason": "CreateContainerConfigError"}})], True, "Pending"),
])
def test_pod_phase(policy, init, containers, init_done, phase):
    assert podstatus.pod_phase(policy, init, containers, init_done) == phase


def gated(*conds):
    return {"spec": {"readinessGates": [{"conditionType": "g1"}, {"conditionType": "g2"}]},
            "status": {"conditions": [{"type": t, "status": s} for t, s in conds]}}


@pytest.mark.parametrize("containers_ready, pod, status", [
    (True, {"spec": {}}, "True"),
    (False, {"spec": {}}, "False"),
    (True, gated(), "False"),                                    # missing gate condition = False
    (True, gated(("g1", "True")), "False"),
    (True, gated(("g1", "True"), ("g2", "False")), "False"),
    (True, gated(("g1", "True"), ("g2", "True")), "True"),
    (False, gated(("g1", "True"), ("g2", "True")), "False"),
])
def test_ready_is_containers_ready_and_every_gate(containers_ready, pod, status):
    assert podstatus.ready_condition(containers_ready, pod)[0] == status


def test_termination_message_file_then_log_fallback():
    assert podstatus.termination_message(b"x" * 5000, b"", 0, None) == "x" * 4096
    assert podstatus.termination_message(b"", b"a\nb\n", 1, "FallbackToLogsOnError") == "a\nb\n"
    assert podstatus.termination_message(b"", b"a\nb\n", 0, "FallbackToLogsOnError") == ""
    assert podstatus.termination_message(b"", b"a\nb\n", 1, "File") == ""
    many = b"".join(b"line %d\n" % i for i in range(200))
    tail = podstatus.termination_message(b"", many, 1, "FallbackToLogsOnError")
    assert tail.splitlines()[0] == "line 120" and tail.endswith("line 199\n")


def test_conditions_keep_transition_time_unless_status_changes():
    prev = {"Ready": {"type": "Ready", "status": "False", "lastTransitionTime": "old"}}
    same = podstatus.conditions(prev, {"Ready": ("False", "R", None)}, "now")
    flipped = podstatus.conditions(prev, {"Ready": ("True", None, None)}, "now")
    assert same[0]["lastTransitionTime"] == "old"
    assert flipped[0]["lastTransitionTime"] == "now"


def test_kubeconfig_needs_exactly_one_credential(tmp_path):
    from devenv import kubeconfig

    with pytest.raises(ValueError, match="needs either a token or a client certificate"):
        kubeconfig.render("https://x", b"ca", user="u")
    with pytest.raises(ValueError):
        kubeconfig.render("https://x", b"ca", user="u", token="t", client_cert_pem=b"c", client_key_pem=b"k")
    cfg = kubeconfig.render("https://x", b"ca", user="system:serviceaccount:ns:sa", token="t", namespace="ns")
    path = kubeconfig.write(tmp_path / "kc", cfg)
    assert path.stat().st_mode & 0o077 == 0  # holds a token: owner-only
    assert cfg["contexts"][0]["context"] == {"cluster": "schemagate-dev", "user": "system:serviceaccount:ns:sa",
                                             "namespace": "ns"}
