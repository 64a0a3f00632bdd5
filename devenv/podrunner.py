"""The kubelet's part, for a control plane without nodes: a local pod runner.

It registers one Node, binds every pending pod to it and then, per pod:
- **runs** it when it belongs to a Job or its image is mapped to a local command (images.py): volumes
  materialised under the pod's directory (podvolumes.py), env resolved (podenv.py), paths rewritten by
  the convention of podpaths.py, init containers one after another, then the containers as local
  processes. Each process gets KUBECONFIG pointing at a kubeconfig holding a TokenRequest token of the
  pod's ServiceAccount, so it has exactly that account's RBAC;
- **fakes** it otherwise (a Deployment's app pods): containers Running and ready.
Either way Ready = ContainersReady AND every readiness gate condition True, recomputed on every pod
event, written with strategic-merge patches of pods/status (conditions merge by type, so the
operator's gate condition survives). Deleting a pod kills its processes, marks it Failed (or
Succeeded) and deletes it with grace period 0, as the kubelet does.

Container output (stdout and stderr together, like `kubectl logs`) is kept in
<workdir>/logs/<namespace>_<pod>_<uid>/<container>.log after the pod is gone; `logs()` reads them.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from devenv import images, kubeconfig, podenv, podstatus, processes
from devenv.logserver import LogServer
from devenv.podpaths import PathMap
from devenv.podvolumes import VolumeNotReady, materialise, mount_map
from devenv.rest import STRATEGIC, ApiError, Rest

log = logging.getLogger(__name__)

NODE_NAME = "schemagate-local"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
# The kubelet's default token lifetime; the apiserver extends exactly this value to a year
# (--service-account-extend-token-expiration), so long-running local pods keep working.
TOKEN_SECONDS = 3607
# Set in every pod process's environment (inherited by its children) so stop() and a restarted
# runner can find processes that escaped their process group.
RUNNER_MARK = "SCHEMAGATE_POD_RUNNER"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_job_pod(pod: dict[str, Any]) -> bool:
    meta = pod.get("metadata") or {}
    if any(o.get("kind") == "Job" for o in meta.get("ownerReferences") or []):
        return True
    return "batch.kubernetes.io/job-name" in (meta.get("labels") or {})


@dataclass
class _Pod:
    uid: str
    namespace: str
    name: str
    pod: dict[str, Any]
    run: bool
    directory: Path
    log_dir: Path
    lock: threading.RLock = field(default_factory=threading.RLock)
    init: list[podstatus.ContainerState] = field(default_factory=list)
    containers: list[podstatus.ContainerState] = field(default_factory=list)
    init_done: bool = False
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: str = field(default_factory=_now)
    terminating: bool = False
    gone: bool = False
    phase_override: str | None = None
    deleting: bool = False
    # Found already finished (runner restarted): its status is final, we only delete it.
    passive: bool = False
    last_sent: Any = None
    wake: threading.Event = field(default_factory=threading.Event)


def _strip_times(status: dict[str, Any]) -> dict[str, Any]:
    return {**status, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                                     for c in status.get("conditions", [])]}


def _condition_states(status: dict[str, Any], like: dict[str, Any] | None = None) -> dict[str, str]:
    """type -> status of the conditions we own (those in `like`, default `status` itself): a
    mismatch with the observed pod means someone overwrote them, so the resync writes them again."""
    ours = {c["type"] for c in (like or status).get("conditions", [])}
    return {c["type"]: c.get("status") for c in status.get("conditions") or [] if c["type"] in ours}


class PodRunner:
    def __init__(self, rest: Rest, ca_pem: bytes, workdir: Path, *, node_name: str = NODE_NAME,
                 image_rules: tuple[images.ImageRule, ...] | None = None,
                 venv_bin: Path | None = None):
        self.rest = rest
        self.ca_pem = ca_pem
        self.workdir = workdir
        self.node_name = node_name
        self.image_rules = image_rules if image_rules is not None else images.rules_from_env()
        self.venv_bin = venv_bin or images.REPO_ROOT / ".venv" / "bin"
        self._pods: dict[str, _Pod] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Recent problems (API errors, failed binds), newest last; bounded for long-running clusters.
        self.errors: collections.deque[str] = collections.deque(maxlen=200)
        self._logserver: LogServer | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "PodRunner":
        # Leftovers of a runner on the same workdir that was killed without cleaning up.
        processes.kill_marked(RUNNER_MARK, str(self.workdir))
        (self.workdir / "pods").mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self._logserver = LogServer(self.workdir / "kubelet", self._locate_log).start()
        self._register_node()
        for target, name in ((self._watch_loop, "podrunner-watch"), (self._resync_loop, "podrunner-resync")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Kill every process we started and wait for our threads."""
        self._stopping.set()
        with self._lock:
            states = list(self._pods.values())
        for st in states:
            st.wake.set()
            self._kill(st)
        for t in self._threads:
            t.join(timeout=20)
        if self._logserver:
            self._logserver.stop()
        processes.kill_marked(RUNNER_MARK, str(self.workdir))

    # ---- logs API --------------------------------------------------------------------------------

    def log_files(self, namespace: str | None = None, pod: str | None = None) -> list[Path]:
        pattern = f"{namespace or '*'}_{pod or '*'}_*/*.log"
        return sorted((self.workdir / "logs").glob(pattern))

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        """Output of a pod's containers (all of them, init first, unless `container` is given)."""
        files = self.log_files(namespace, pod)
        if container:
            files = [f for f in files if f.stem == container]
        return "".join(f.read_text(errors="replace") for f in files)

    def _locate_log(self, namespace: str, pod: str, container: str) -> tuple[Path | None, bool]:
        with self._lock:
            live = [s for s in self._pods.values() if s.namespace == namespace and s.name == pod]
        if live:
            st = live[-1]
            return st.log_dir / f"{container}.log", container in st.procs
        files = [f for f in self.log_files(namespace, pod) if f.stem == container]
        return (files[-1] if files else None), False

    def all_logs(self) -> dict[str, str]:
        """'namespace_pod_uid/container' -> output, for every container ever run here."""
        return {f"{f.parent.name}/{f.stem}": f.read_text(errors="replace") for f in self.log_files()}

    # ---- API plumbing ----------------------------------------------------------------------------

    def _register_node(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name, "labels": {
            "kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": "schemagate-local"}}}
        try:
            self.rest.request("POST", "/api/v1/nodes", node)
        except ApiError as exc:
            if exc.status != 409:
                raise
        resources = {"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti"}
        now = _now()
        status = {"status": {
            "capacity": resources, "allocatable": resources,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": self.node_name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "schemagate local pod runner", "lastHeartbeatTime": now,
                            "lastTransitionTime": now}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self._logserver.port if self._logserver else 0}},
            "nodeInfo": {"kubeletVersion": "schemagate-local", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "schemagate-local://0",
                         "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                         "osImage": "", "kubeProxyVersion": ""},
        }}
        self.rest.request("PATCH", f"/api/v1/nodes/{self.node_name}/status", status, STRATEGIC)

    def _lookup(self, plural: str) -> podenv.Lookup:
        def get(ns: str, name: str) -> dict[str, Any] | None:
            found: dict[str, Any] | None = self.rest.get_or_none(f"/api/v1/namespaces/{ns}/{plural}/{name}")
            return found
        return get

    def _token(self, pod: dict[str, Any], audience: str | None, seconds: int) -> str:
        meta = pod["metadata"]
        sa = pod["spec"].get("serviceAccountName") or "default"
        spec: dict[str, Any] = {"expirationSeconds": max(seconds, 600),
                                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                                   "uid": meta["uid"]}}
        if audience:
            spec["audiences"] = [audience]
        resp = self.rest.request("POST", f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{sa}/token",
                                 {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return str(resp["status"]["token"])

    # ---- watch -----------------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        rv = None
        while not self._stopping.is_set():
            try:
                if rv is None:
                    listing = self.rest.get("/api/v1/pods")
                    rv = listing["metadata"]["resourceVersion"]
                    # Pods deleted while we were not watching get no DELETED event.
                    seen = {p["metadata"]["uid"] for p in listing["items"]}
                    with self._lock:
                        vanished = [s.pod for uid, s in self._pods.items() if uid not in seen]
                    for pod in vanished:
                        self._on_pod("DELETED", pod)
                    for pod in listing["items"]:
                        self._on_pod("ADDED", pod)
                for event in self.rest.watch("/api/v1/pods", rv, timeout_seconds=5):
                    if self._stopping.is_set():
                        return
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        rv = None  # 410 Gone: relist
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._on_pod(event["type"], obj)
            except Exception as exc:  # keep the kubelet alive whatever one event did
                if self._stopping.is_set():
                    return
                self._error(f"pod watch: {exc}")
                rv = None
                time.sleep(0.5)

    def _resync_loop(self) -> None:
        while not self._stopping.wait(2.0):
            with self._lock:
                states = [s for s in self._pods.values() if not s.gone]
            for st in states:
                self._reconcile(st)
            self._bind_pending()

    def _bind_pending(self) -> None:
        try:
            pods = self.rest.get("/api/v1/pods", fieldSelector="spec.nodeName=")["items"]
        except Exception as exc:
            self._error(f"listing unbound pods: {exc}")
            return
        for pod in pods:
            if not pod["metadata"].get("deletionTimestamp"):
                self._bind(pod)

    def _error(self, message: str) -> None:
        log.warning("podrunner: %s", message)
        self.errors.append(message)

    def _bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": meta["name"], "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name}}
        try:
            self.rest.request("POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body)
        except ApiError as exc:
            if exc.status not in (404, 409):  # gone, or bound meanwhile
                self._error(f"binding {meta['namespace']}/{meta['name']}: {exc}")

    def _on_pod(self, event: str, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        if event == "DELETED":
            with self._lock:
                st = self._pods.pop(uid, None)
            if st:
                st.gone = True
                st.wake.set()
                threading.Thread(target=self._kill, args=(st,), daemon=True).start()
            return
        if not spec.get("nodeName"):
            if not meta.get("deletionTimestamp"):
                self._bind(pod)
            return
        if spec["nodeName"] != self.node_name:
            return
        with self._lock:
            st = self._pods.get(uid)
            fresh = st is None
            if fresh:
                st = self._new_state(pod)
                self._pods[uid] = st
        assert st is not None
        with st.lock:
            st.pod = pod
        if fresh and (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            st.terminating = st.passive = True
        elif fresh:
            self._begin(st)
        if meta.get("deletionTimestamp"):
            self._delete(st)
        else:
            self._reconcile(st)

    def _new_state(self, pod: dict[str, Any]) -> _Pod:
        meta, spec = pod["metadata"], pod["spec"]
        mapped = any(images.lookup(c.get("image", ""), self.image_rules)
                     for c in [*spec.get("initContainers", []), *spec["containers"]])
        run = is_job_pod(pod) or mapped
        key = f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
        st = _Pod(uid=meta["uid"], namespace=meta["namespace"], name=meta["name"], pod=pod, run=run,
                  directory=self.workdir / "pods" / key, log_dir=self.workdir / "logs" / key)
        st.init = [podstatus.ContainerState(c["name"], c.get("image", "")) for c in spec.get("initContainers", [])]
        st.containers = [podstatus.ContainerState(c["name"], c.get("image", "")) for c in spec["containers"]]
        if st.init:
            for c in st.containers:
                c.state = {"waiting": {"reason": "PodInitializing"}}
        return st

    def _begin(self, st: _Pod) -> None:
        if not st.run:
            with st.lock:
                st.init_done = True
                for c in st.init:
                    c.state = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": st.started,
                                              "finishedAt": st.started}}
                for c in st.containers:
                    c.state = {"running": {"startedAt": st.started}}
                    c.ready = True
            return
        t = threading.Thread(target=self._run_pod, args=(st,), name=f"pod-{st.namespace}/{st.name}", daemon=True)
        t.start()

    # ---- status ----------------------------------------------------------------------------------

    def _desired_status(self, st: _Pod) -> dict[str, Any]:
        pod = st.pod
        policy = pod["spec"].get("restartPolicy", "Always")
        phase = st.phase_override or podstatus.pod_phase(policy, st.init, st.containers, st.init_done)
        if not st.run and not st.phase_override:
            phase = "Running"
        containers_ready = all(c.ready and "running" in c.state for c in st.containers)
        terminal = phase in ("Succeeded", "Failed")
        desired: dict[str, tuple[str, str | None, str | None]] = {
            "PodReadyToStartContainers": ("True", None, None),
            "Initialized": ("True", None, None) if st.init_done else
            ("False", "ContainersNotInitialized", "containers with incomplete status: "
             + str([c.name for c in st.init if not c.terminated])),
            "ContainersReady": ("True", None, None) if containers_ready else
            ("False", "PodCompleted" if terminal else "ContainersNotReady",
             None if terminal else "containers with unready status: "
             + str([c.name for c in st.containers if not (c.ready and 'running' in c.state)])),
        }
        if terminal:
            desired["Ready"] = ("False", "PodCompleted", None)
        else:
            desired["Ready"] = podstatus.ready_condition(containers_ready, pod)
        previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
        status: dict[str, Any] = {
            "phase": phase, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}], "startTime": st.started,
            "conditions": podstatus.conditions(previous, desired, _now()),
            "containerStatuses": [c.status() for c in st.containers],
        }
        if st.init:
            status["initContainerStatuses"] = [c.status() for c in st.init]
        return status

    def _reconcile(self, st: _Pod) -> None:
        with st.lock:
            if st.gone or st.passive:
                return
            status = self._desired_status(st)
            if st.last_sent is not None and _strip_times(status) == st.last_sent and \
                    _condition_states(status) == _condition_states(st.pod.get("status") or {}, status):
                return
            try:
                self.rest.request("PATCH", f"/api/v1/namespaces/{st.namespace}/pods/{st.name}/status",
                                  {"status": status}, STRATEGIC)
                st.last_sent = _strip_times(status)
            except ApiError as exc:
                if exc.status == 404:
                    st.gone = True
                else:
                    self._error(f"status of {st.namespace}/{st.name}: {exc}")
            except OSError as exc:
                self._error(f"status of {st.namespace}/{st.name}: {exc}")

    # ---- deletion --------------------------------------------------------------------------------

    def _kill(self, st: _Pod) -> None:
        with st.lock:
            st.terminating = True
            procs = list(st.procs.values())
        for p in procs:
            processes.stop(p, timeout=2)

    def _delete(self, st: _Pod) -> None:
        """The kubelet's side of a graceful delete: stop, report a terminal phase, delete for good."""
        with st.lock:
            if st.deleting:
                return
            st.deleting = True
        threading.Thread(target=self._finish_delete, args=(st,), daemon=True).start()

    def _finish_delete(self, st: _Pod) -> None:
        self._kill(st)
        if not st.passive:
            with st.lock:
                for c in [*st.init, *st.containers]:
                    if "running" in c.state:
                        c.state = {"terminated": {"exitCode": 137, "reason": "Error",
                                                  "startedAt": c.state["running"]["startedAt"],
                                                  "finishedAt": _now()}}
                    elif "terminated" not in c.state:
                        c.state = {"terminated": {
                            "exitCode": 137, "reason": "ContainerStatusUnknown",
                            "message": "The container could not be located when the pod was terminated"}}
                    c.ready = False
                policy = st.pod["spec"].get("restartPolicy", "Always")
                phase = podstatus.pod_phase(policy, st.init, st.containers, st.init_done)
                st.phase_override = phase if phase in ("Succeeded", "Failed") and st.run else "Failed"
            self._reconcile(st)
        try:
            self.rest.request("DELETE", f"/api/v1/namespaces/{st.namespace}/pods/{st.name}",
                              {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                               "preconditions": {"uid": st.uid}})
        except ApiError as exc:
            if exc.status not in (404, 409):
                self._error(f"deleting {st.namespace}/{st.name}: {exc}")

    # ---- running ---------------------------------------------------------------------------------

    def _run_pod(self, st: _Pod) -> None:
        try:
            self._run_pod_inner(st)
        except Exception as exc:
            self._error(f"running {st.namespace}/{st.name}: {exc!r}")

    def _prepare(self, st: _Pod) -> tuple[dict[str, Any], dict[str, dict[str, str]], dict[str, Path]] | None:
        """Volumes, token kubeconfig and every container's env; retried until they resolve."""
        pod = st.pod
        secrets, configmaps = self._lookup("secrets"), self._lookup("configmaps")
        while not (st.terminating or st.gone or self._stopping.is_set()):
            problem: tuple[str, str, str] | None = None
            try:
                volumes = materialise(pod, st.directory / "volumes", secrets=secrets, configmaps=configmaps,
                                      token=lambda aud, secs: self._token(pod, aud, secs),
                                      claims=self.workdir / "claims")
                envs: dict[str, dict[str, str]] = {}
                for c in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
                    try:
                        envs[c["name"]] = podenv.resolve_env(pod, c, secrets=secrets, configmaps=configmaps)
                    except podenv.ContainerConfigError as exc:
                        problem = (c["name"], "CreateContainerConfigError", str(exc))
                        break
                if problem is None:
                    kc = kubeconfig.render(self.rest.server, self.ca_pem,
                                           user=f"system:serviceaccount:{st.namespace}:"
                                                f"{pod['spec'].get('serviceAccountName') or 'default'}",
                                           token=self._token(pod, None, TOKEN_SECONDS), namespace=st.namespace)
                    kubeconfig.write(st.directory / "kubeconfig", kc)
                    return pod, envs, volumes
            except VolumeNotReady as exc:
                problem = ("", "ContainerCreating", str(exc))
            except podenv.ContainerConfigError as exc:
                problem = ("", "CreateContainerConfigError", str(exc))
            with st.lock:
                for c in [*st.init, *st.containers]:
                    if not problem[0] or c.name == problem[0]:
                        c.state = {"waiting": {"reason": problem[1], "message": problem[2]}}
            self._reconcile(st)
            st.wake.wait(2.0)
            st.wake.clear()
        return None

    def _run_pod_inner(self, st: _Pod) -> None:
        st.directory.mkdir(parents=True, exist_ok=True)
        st.log_dir.mkdir(parents=True, exist_ok=True)
        prepared = self._prepare(st)
        if prepared is None:
            return
        pod, envs, volumes = prepared
        spec = pod["spec"]
        policy = spec.get("restartPolicy", "Always")
        with st.lock:
            for c in st.init:
                c.state = {"waiting": {"reason": "PodInitializing"}}
        for cspec, cstate in zip(spec.get("initContainers", []), st.init):
            # An init container restarts until it succeeds unless the pod's policy is Never.
            code = self._run_container(st, cspec, cstate, envs[cspec["name"]], volumes,
                                       "Never" if policy == "Never" else "OnFailure", init=True)
            if code != 0:
                with st.lock:
                    for c in st.containers:
                        c.state = {"waiting": {"reason": "PodInitializing"}}
                self._reconcile(st)
                return
        with st.lock:
            st.init_done = True
            for c in st.containers:
                c.state = {"waiting": {"reason": "ContainerCreating"}}
        self._reconcile(st)
        threads = [threading.Thread(target=self._run_container,
                                    args=(st, cspec, cstate, envs[cspec["name"]], volumes, policy),
                                    name=f"ctr-{st.name}/{cspec['name']}", daemon=True)
                   for cspec, cstate in zip(spec["containers"], st.containers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _command(self, st: _Pod, cspec: dict[str, Any], env: dict[str, str], volumes: dict[str, Path]
                 ) -> tuple[list[str] | None, dict[str, str], Path, Path, str | None]:
        """argv, process env, cwd, termination-message host path — or argv None with the reason."""
        name = cspec["name"]
        cdir = st.directory / "containers" / name
        cdir.mkdir(parents=True, exist_ok=True)
        mounts = mount_map(cspec, volumes)
        term_path = cspec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        term_host = cdir / "termination-log"
        term_host.write_bytes(b"")
        mounts[term_path] = str(term_host)
        paths = PathMap.build(mounts)
        rule = images.lookup(cspec.get("image", ""), self.image_rules)
        entry = list(cspec.get("command") or (rule.entrypoint if rule else ()))
        args = list(cspec.get("args") or [])
        if not entry and not args:
            return None, {}, cdir, term_host, (f"image {cspec.get('image')!r} is not mapped to a local command "
                                               "(SCHEMAGATE_IMAGE_MAP) and the container has no command")
        if not cspec.get("command") and not rule:
            entry = []
        argv = [paths.rewrite(podenv.expand(a, env)) for a in [*entry, *args]]
        home = cdir / "home"
        home.mkdir(exist_ok=True)
        base_path = env.get("PATH") or os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        prefix = [*(rule.path if rule else ()), str(self.venv_bin)]
        # Only what a container would see: never the harness's own environment (admin KUBECONFIG,
        # database URLs, ...).
        penv = {"HOME": str(home), "HOSTNAME": st.name, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
                "KUBECONFIG": str(st.directory / "kubeconfig"), RUNNER_MARK: str(self.workdir)}
        penv.update({k: paths.rewrite(v) for k, v in env.items()})
        penv["PATH"] = os.pathsep.join([*prefix, base_path])
        mapped_wd = paths.host_path(cspec.get("workingDir") or "")
        cwd = Path(mapped_wd) if mapped_wd else cdir
        if shutil.which(argv[0], path=penv["PATH"]) is None and not Path(argv[0]).is_file():
            return None, penv, cwd, term_host, f'exec: "{argv[0]}": executable file not found in $PATH'
        return argv, penv, cwd, term_host, None

    def _run_container(self, st: _Pod, cspec: dict[str, Any], cs: podstatus.ContainerState, env: dict[str, str],
                       volumes: dict[str, Path], policy: str, init: bool = False) -> int:
        logfile = st.log_dir / f"{cspec['name']}.log"
        backoff = 1.0
        while True:
            if st.terminating or self._stopping.is_set():
                return 137
            argv, penv, cwd, term_host, why = self._command(st, cspec, env, volumes)
            started = _now()
            if argv is None:
                code, term = 128, {"exitCode": 128, "reason": "StartError", "message": why,
                                   "startedAt": started, "finishedAt": started}
            else:
                before = logfile.stat().st_size if logfile.exists() else 0
                with st.lock:
                    if st.terminating:
                        return 137
                    proc = processes.spawn(argv, log=logfile, env=penv, cwd=cwd)
                    st.procs[cspec["name"]] = proc
                    cs.state = {"running": {"startedAt": started}}
                    cs.ready = not init
                self._reconcile(st)
                code = proc.wait()
                processes.stop(proc, timeout=1)  # the group's leftovers
                with st.lock:
                    st.procs.pop(cspec["name"], None)
                if code < 0:
                    code = 128 - code  # killed by signal N: 128+N, as a runtime reports it
                with open(logfile, "rb") as f:
                    f.seek(before)
                    output = f.read()
                message = podstatus.termination_message(term_host.read_bytes(), output, code,
                                                        cspec.get("terminationMessagePolicy"))
                term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                        "startedAt": started, "finishedAt": _now(),
                        "containerID": f"schemagate-local://{st.uid}/{cspec['name']}"}
                if message:
                    term["message"] = message
            restart = not st.terminating and (policy == "Always" or (policy == "OnFailure" and code != 0))
            with st.lock:
                cs.ready = False
                if restart:
                    cs.last_state = {"terminated": term}
                    cs.restart_count += 1
                    cs.state = {"waiting": {"reason": "CrashLoopBackOff",
                                            "message": f"back-off {backoff:.0f}s restarting failed container"}}
                else:
                    cs.state = {"terminated": term}
            self._reconcile(st)
            if not restart:
                return code
            st.wake.wait(backoff)
            st.wake.clear()
            backoff = min(backoff * 2, 10.0)
