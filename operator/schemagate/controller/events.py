"""Kubernetes Events: the one Event type the decisions return, and the one place that posts them.

Events are best effort: status carries the truth, so a refused Event is logged and forgotten. Each Event is
also logged (WARNING for Warning), so `kubectl logs` tells the same story as `kubectl get events`.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from schemagate.api import conditions as c
from schemagate.kube import Clients

log = logging.getLogger(__name__)

NORMAL: Literal["Normal"] = "Normal"
WARNING: Literal["Warning"] = "Warning"

COMPONENT = "schemagate"
REPORTING_COMPONENT = "schemagate.io/operator"


@dataclass(frozen=True)
class Event:
    type: str  # NORMAL | WARNING
    reason: str  # a constant of schemagate.api.reasons
    message: str


def involved(api_version: str, kind: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The involvedObject of an Event about the object with `metadata`."""
    return {"apiVersion": api_version, "kind": kind, "name": metadata["name"], "namespace": metadata["namespace"],
            "uid": metadata.get("uid")}


def body(about: Mapping[str, Any], event: Event, now: str) -> dict[str, Any]:
    """The core/v1 Event object (pure)."""
    message = c.short(event.message)  # one truncation rule, the conditions' (conditions.MESSAGE_LIMIT)
    return {
        "metadata": {"generateName": f"{about['name']}.", "namespace": about["namespace"]},
        "involvedObject": dict(about),
        "type": event.type, "reason": event.reason, "message": message,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "source": {"component": COMPONENT},
        "reportingComponent": REPORTING_COMPONENT, "reportingInstance": socket.gethostname()[:128],
    }


def post(k: Clients, about: Mapping[str, Any], events: Iterable[Event]) -> None:
    """Log and post each Event on the object `about` (an involvedObject)."""
    where = f"{about['kind']} {about['namespace']}/{about['name']}"
    for event in events:
        log.log(logging.WARNING if event.type == WARNING else logging.INFO, "%s: %s: %s", where, event.reason,
                event.message, extra={"reason": event.reason})
        try:
            doc = body(about, event, c.now_rfc3339())
            k.core.create_namespaced_event(about["namespace"], doc)  # type: ignore[arg-type]  # dicts go as-is
        except ApiException as e:  # best effort; status carries the truth
            log.warning("could not post event %s on %s: %s", event.reason, where, e.reason)
