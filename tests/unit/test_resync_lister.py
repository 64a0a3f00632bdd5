"""The resync lists every watched namespace; one it cannot read (deleted, or its Role gone) must not
stop the resync of the others."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from kubernetes.client.rest import ApiException

from schemagate.controller.objects import lister as _lister


class Custom:
    def list_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str) -> Any:
        if namespace == "gone":
            raise ApiException(status=403, reason="Forbidden")
        return {"items": [{"metadata": {"namespace": namespace, "name": "app"}}]}


def test_a_namespace_that_cannot_be_listed_is_skipped_and_the_others_are_resynced() -> None:
    list_keys = _lister(SimpleNamespace(custom=Custom()), ["a", "gone", "b"])  # type: ignore[arg-type]
    assert list_keys() == [("a", "app"), ("b", "app")]
