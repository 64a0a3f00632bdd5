"""A Job whose pod cannot start says why while it waits (issue 16, "Faults tell the truth").

One path for every cause: observe._waiting reads it (the kubelet's container waiting reason, the scheduler's
PodScheduled=False, or, when the Job has no pod at all, the Job controller's newest FailedCreate Event),
decide.WaitForJob carries it, status.for_action puts it in the Migrating message (Reconciling True, not
Stalled: whoever refuses keeps retrying until spec.job.activeDeadlineSeconds), and a Warning PodCannotStart
is posted once per Job and cause. tests/unit/test_jobenv.py has the first cause, CreateContainerConfigError.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.unit import reconcile_world
from tests.unit.reconcile_world import World

from schemagate.api import reasons
from schemagate.controller import decide as p
from schemagate.controller import observe
from schemagate.controller import status as st
from schemagate.controller.observe import JobInfo

JOB = "app-g1-abc"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SA_MISSING = (f'Error creating: pods "{JOB}-" is forbidden: error looking up service account '
              f'team/config-server-migrator: serviceaccount "config-server-migrator" not found')


def _job(ready: int | None = 0, active: int | None = 1, uid: str = "job-uid") -> client.V1Job:
    return client.V1Job(metadata=client.V1ObjectMeta(name=JOB, uid=uid, owner_references=[client.V1OwnerReference(
        api_version="schemagate.io/v1alpha1", kind="SchemaMigration", name="app", uid="u-1")]),
        status=client.V1JobStatus(active=active, ready=ready, start_time=T0))


def _status(name: str, *, waiting: tuple[str, str] | None = None, running: bool = False) -> client.V1ContainerStatus:
    """`waiting` is (message, reason)."""
    if running:
        state = client.V1ContainerState(running=client.V1ContainerStateRunning(started_at=T0))
    else:
        state = client.V1ContainerState(waiting=client.V1ContainerStateWaiting(message=waiting[0], reason=waiting[1])
                                        if waiting else None)
    return client.V1ContainerStatus(name=name, state=state, image="i", image_id="", ready=running, restart_count=0)


def _pod(phase: str = "Pending", created: datetime = T0, containers: list[client.V1ContainerStatus] | None = None,
         init: list[client.V1ContainerStatus] | None = None,
         conditions: list[client.V1PodCondition] | None = None) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=f"{JOB}-xyz", creation_timestamp=created),
                        status=client.V1PodStatus(phase=phase, container_statuses=containers,
                                                  init_container_statuses=init, conditions=conditions))


def _event(message: str, last: datetime, reason: str = "FailedCreate") -> client.CoreV1Event:
    return client.CoreV1Event(metadata=client.V1ObjectMeta(name=f"{JOB}.{int(last.timestamp())}"),
                              involved_object=client.V1ObjectReference(kind="Job", name=JOB), reason=reason,
                              message=message, type="Warning", last_timestamp=last, count=3)


class Cluster:
    """The Job list, its pods and its Events, counting what the operator asks for."""

    def __init__(self, jobs: list[client.V1Job], pods: list[client.V1Pod] = (),
                 events: list[client.CoreV1Event] | ApiException = ()):
        self.jobs, self.pods, self.events = jobs, list(pods), events
        self.pod_lists = 0
        self.event_selectors: list[str] = []

    def list_namespaced_job(self, namespace: str, label_selector: str = "") -> SimpleNamespace:
        return SimpleNamespace(items=self.jobs)

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> SimpleNamespace:
        assert label_selector == f"job-name={JOB}"
        self.pod_lists += 1
        return SimpleNamespace(items=self.pods)

    def list_namespaced_event(self, namespace: str, field_selector: str) -> SimpleNamespace:
        self.event_selectors.append(field_selector)
        if isinstance(self.events, ApiException):
            raise self.events
        return SimpleNamespace(items=list(self.events))


def _message(k: Cluster) -> str | None:
    (found,) = observe.jobs(k, k, "team", "app", "u-1")
    assert found.state.phase == "Running"
    return found.state.message


def _migrating(message: str) -> tuple[str, Any]:
    """The plan and status for a running Job whose JobState says `message`."""
    inputs = p.Inputs(name="app", namespace="team", generation=1, target=None,
                      migrations=(p.MigrationFile(1, "00001_a.sql", "s"),), db=p.ObservedDatabase(0),
                      jobs=(p.JobState(JOB, "Running", None, message),))
    action = p.plan(inputs)
    assert isinstance(action, p.WaitForJob) and action.waiting == message
    phase, conds, _ = st.for_action(action, inputs.db)
    return phase, {c.type: c for c in conds}


# --- The kubelet: an image it cannot pull, or that is not on the node ------------------------------------

@pytest.mark.parametrize("reason, words", [
    ("ErrImagePull", 'failed to pull and unpack image "localhost/absent:e2e": failed to resolve reference '
                     '"localhost/absent:e2e": dial tcp [::1]:443: connect: connection refused'),
    ("ImagePullBackOff", 'Back-off pulling image "localhost/absent:e2e"'),
    ("InvalidImageName", 'Failed to apply default image tag "Bad Image": couldn\'t parse image name'),
    ("ErrImageNeverPull", 'Container image "localhost/absent:e2e" is not present with pull policy of Never'),
])
def test_an_image_the_kubelet_cannot_get_is_named_in_the_migrating_message(reason, words):
    k = Cluster([_job()], [_pod(containers=[_status("migrate", waiting=(words, reason))])])
    message = _message(k)
    assert message == f"{reason}: {words}"
    assert k.event_selectors == []  # a pod exists: the Job controller's Events are not read
    phase, conds = _migrating(message)
    assert phase == "Migrating"
    assert (conds["Reconciling"].status, conds["Reconciling"].reason) == ("True", reasons.MIGRATING)
    assert conds["Stalled"].status == "False"
    assert f"Job {JOB} is migrating from version 0 to version 1; its pod cannot start: {reason}: " \
           f"{words} (retried until spec.job.activeDeadlineSeconds)" == conds["Reconciling"].message


def test_an_image_source_whose_init_container_cannot_pull_names_that_container():
    pod = _pod(init=[_status("copy-migrations", waiting=('Back-off pulling image "localhost/files:v9"',
                                                         "ImagePullBackOff"))],
               containers=[_status("migrate", waiting=(None, "PodInitializing"))])
    assert _message(Cluster([_job()], [pod])) == \
        'ImagePullBackOff (container copy-migrations): Back-off pulling image "localhost/files:v9"'


def test_no_node_fits_the_pod():
    cond = client.V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable",
                                 message="0/1 nodes are available: 1 node(s) didn't match Pod's node "
                                         "affinity/selector.")
    assert _message(Cluster([_job()], [_pod(conditions=[cond])])) == \
        "Unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."


@pytest.mark.parametrize("pod", [
    _pod(containers=[_status("migrate", waiting=(None, "ContainerCreating"))]),  # pulling, mounting: normal
    _pod(phase="Running", containers=[_status("migrate", running=True)]),
    _pod(),  # created, not yet scheduled
])
def test_a_pod_on_its_way_says_nothing_and_the_events_are_not_read(pod):
    k = Cluster([_job()], [pod], events=[_event(SA_MISSING, T0)])
    assert _message(k) is None
    assert k.event_selectors == []


def test_a_ready_job_is_not_looked_into():
    k = Cluster([_job(ready=1)], [_pod(phase="Running", containers=[_status("migrate", running=True)])])
    assert _message(k) is None
    assert (k.pod_lists, k.event_selectors) == (0, [])


# --- The Job controller: no pod at all ------------------------------------------------------------------

def test_a_job_without_a_pod_says_what_the_job_controller_was_refused():
    older = _event('Error creating: pods "app-g1-abc-" is forbidden: exceeded quota: pods, requested: pods=1, '
                   'used: pods=4, limited: pods=4', T0)
    k = Cluster([_job(active=0)], [], events=[older, _event(SA_MISSING, T0 + timedelta(seconds=30))])
    message = _message(k)
    assert message == f"FailedCreate: {SA_MISSING}"
    assert k.event_selectors == [f"involvedObject.kind=Job,involvedObject.name={JOB},reason=FailedCreate,"
                                 f"involvedObject.uid=job-uid"]
    phase, conds = _migrating(message)
    assert phase == "Migrating" and conds["Stalled"].status == "False"
    assert 'its pod cannot start: FailedCreate: Error creating: pods "app-g1-abc-" is forbidden: error looking up ' \
           'service account team/config-server-migrator: serviceaccount "config-server-migrator" not found' \
           in conds["Reconciling"].message


def test_a_refusal_older_than_the_newest_pod_is_history():
    """The ServiceAccount was created, the pod ran and failed, the Job controller creates the next one: the
    old FailedCreate says nothing about it."""
    failed = _pod(phase="Failed", created=T0 + timedelta(minutes=2),
                  containers=[_status("migrate", waiting=None)])
    k = Cluster([_job(active=0)], [failed], events=[_event(SA_MISSING, T0)])
    assert _message(k) is None
    k.events = [_event(SA_MISSING, T0), _event("Error creating: quota", T0 + timedelta(minutes=3))]
    assert _message(k) == "FailedCreate: Error creating: quota"


def test_events_the_operator_may_not_list_are_no_verdict():
    k = Cluster([_job(active=0)], [], events=ApiException(status=403, reason="Forbidden"))
    assert _message(k) is None


def test_a_finished_job_is_never_asked_for_its_events():
    failed = client.V1Job(metadata=_job().metadata, status=client.V1JobStatus(conditions=[client.V1JobCondition(
        type="Failed", status="True", reason="DeadlineExceeded", message="Job was active longer than specified "
                                                                         "deadline")]))
    k = Cluster([failed], [], events=[_event(SA_MISSING, T0)])
    (found,) = observe.jobs(k, k, "team", "app", "u-1")
    assert found.state.phase == "Failed" and k.event_selectors == []


# --- Through the reconcile: one Warning per cause, and the deadline says what held the pod ----------------

def _stuck(w: World, message: str | None) -> str:
    (name, info), = [(n, i) for n, i in w.jobs.items() if i.state.phase == "Running"]
    w.jobs[name] = JobInfo(p.JobState(name, "Running", None, message), info.started, None, info.created)
    return name


def _cannot_start_events(w: World) -> list[dict[str, Any]]:
    return [e for e in w.events if e["reason"] == reasons.POD_CANNOT_START]


def test_the_warning_is_posted_once_per_cause_and_the_phase_stays_migrating(monkeypatch):
    w = World(monkeypatch)
    w.reconcile()  # the Job is created
    pull = 'ErrImagePull: failed to pull image "localhost/absent:e2e": connection refused'
    job = _stuck(w, pull)
    for _ in range(3):
        status = w.reconcile()
    assert status["phase"] == "Migrating"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "False", "Reconciling": "True",
                                                                        "Stalled": "False"}
    (event,) = _cannot_start_events(w)
    assert (event["type"], event["message"]) == ("Warning", f"Job {job}: its pod cannot start: {pull}")
    # The kubelet alternates ErrImagePull and ImagePullBackOff while it backs off: the same cause.
    _stuck(w, 'ImagePullBackOff: Back-off pulling image "localhost/absent:e2e"')
    w.reconcile()
    assert "ImagePullBackOff" in st.cannot_start(w.status["conditions"], job)[1]
    assert len(_cannot_start_events(w)) == 1
    # Another cause is another Warning.
    _stuck(w, 'CreateContainerConfigError: secret "app-role" not found')
    w.reconcile()
    w.reconcile()
    assert [e["message"] for e in _cannot_start_events(w)] == [
        f"Job {job}: its pod cannot start: {pull}",
        f'Job {job}: its pod cannot start: CreateContainerConfigError: secret "app-role" not found']
    # It starts: the message says Migrating only, and no Warning.
    _stuck(w, None)
    status = w.reconcile()
    assert st.cannot_start(status["conditions"]) is None and len(_cannot_start_events(w)) == 2


def test_a_job_that_reaches_its_deadline_without_a_pod_says_what_held_it(monkeypatch):
    w = World(monkeypatch)
    w.reconcile()
    _stuck(w, f"FailedCreate: {SA_MISSING}")
    w.reconcile()
    w.finish("Failed", message="DeadlineExceeded: Job was active longer than specified deadline")
    status = w.reconcile()
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (status["phase"], stalled["status"], stalled["reason"]) == ("Failed", "True", reasons.JOB_FAILED)
    held = f"when last seen, its pod could not start: FailedCreate: {SA_MISSING}"
    assert "DeadlineExceeded: Job was active longer than specified deadline" in stalled["message"]
    assert held in stalled["message"] and held in status["lastJob"]["message"]
    assert _cannot_start_events(w) and any(held in e["message"] for e in w.events if e["reason"] == "JobFailed")


def test_a_run_that_failed_with_the_runners_result_is_not_blamed_on_its_pod(monkeypatch):
    w = World(monkeypatch)
    w.reconcile()
    _stuck(w, "ErrImagePull: timeout")
    w.reconcile()
    w.finish("Failed", reconcile_world.FAILED)
    status = w.reconcile()
    assert "could not start" not in status["lastJob"]["message"]
