"""Pod status as the kubelet reports it, computed from what the local pod runner knows.

Pure. Follows pkg/kubelet/kubelet_pods.go (getPhase) and pkg/kubelet/status/generate.go
(GeneratePodReadyCondition: Ready = ContainersReady AND every readiness gate condition True, a
missing gate condition counting as False — KEP-580).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# kubelet: kubecontainer.MaxContainerTerminationMessageLength / ...LogLines / ...LogLength
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048


@dataclass
class ContainerState:
    """One container as the runner sees it; `state` is the Kubernetes ContainerState dict."""

    name: str
    image: str
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False

    def status(self) -> dict[str, Any]:
        running = "running" in self.state
        return {
            "name": self.name, "image": self.image, "imageID": f"schemagate-local://{self.image}",
            "containerID": f"schemagate-local://{self.name}" if not self._waiting_only() else None,
            "state": self.state, "lastState": self.last_state, "ready": self.ready and running,
            "restartCount": self.restart_count, "started": running,
        }

    def _waiting_only(self) -> bool:
        return "waiting" in self.state and not self.last_state

    @property
    def terminated(self) -> dict[str, Any] | None:
        return self.state.get("terminated")


def termination_message(file_content: bytes, logs: bytes, exit_code: int, policy: str | None) -> str:
    """kubelet: the file first; FallbackToLogsOnError uses the log tail when the file is empty and
    the container failed."""
    msg = file_content[:MAX_TERMINATION_MESSAGE]
    if not msg.strip() and policy == "FallbackToLogsOnError" and exit_code != 0:
        lines = logs.splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
        msg = b"".join(lines)[-FALLBACK_LOG_BYTES:]
    return msg.decode("utf-8", "replace")


def pod_phase(restart_policy: str, init: list[ContainerState], containers: list[ContainerState],
              init_done: bool) -> str:
    """kubelet getPhase, for containers the runner actually runs."""
    for c in init:
        t = c.terminated
        if t and t.get("exitCode", 0) != 0 and restart_policy == "Never":
            return "Failed"
    if not init_done:
        return "Pending"
    states = [c.state for c in containers]
    if any("running" in s for s in states):
        return "Running"
    if all("terminated" in s for s in states):
        codes = [s["terminated"].get("exitCode", 0) for s in states]
        if all(code == 0 for code in codes):
            return "Running" if restart_policy == "Always" else "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    if any(c.restart_count > 0 or c.last_state for c in containers):
        return "Running"  # waiting to restart (CrashLoopBackOff)
    return "Pending"


def ready_condition(containers_ready: bool, pod: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(status, reason, message) of the Ready condition."""
    if not containers_ready:
        return "False", "ContainersNotReady", "containers with unready status"
    gates = [g["conditionType"] for g in (pod.get("spec") or {}).get("readinessGates") or []]
    conds = {c["type"]: c.get("status") for c in ((pod.get("status") or {}).get("conditions") or [])}
    missing = [g for g in gates if g not in conds]
    false = [g for g in gates if g in conds and conds[g] != "True"]
    if missing:
        return "False", "ReadinessGatesNotReady", f"corresponding condition of pod readiness gate {missing[0]!r} does not exist."
    if false:
        return "False", "ReadinessGatesNotReady", f"the status of pod readiness gate {false[0]!r} is not \"True\", but {conds[false[0]]}"
    return "True", None, None


def conditions(previous: dict[str, dict[str, Any]], desired: dict[str, tuple[str, str | None, str | None]],
               now: str) -> list[dict[str, Any]]:
    """Condition dicts keeping lastTransitionTime unless the status changed."""
    out = []
    for ctype, (status, reason, message) in desired.items():
        prev = previous.get(ctype)
        ltt = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
        cond: dict[str, Any] = {"type": ctype, "status": status, "lastTransitionTime": ltt,
                                "lastProbeTime": None, "reason": reason, "message": message}
        out.append(cond)
    return out
