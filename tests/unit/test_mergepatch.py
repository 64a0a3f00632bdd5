"""A status or a child's spec sent as a merge patch must not keep what the new value dropped."""

from __future__ import annotations

from schemagate.controller.mergepatch import replacing


def test_a_dropped_key_goes_as_null_in_nested_objects_too() -> None:
    old = {"lastJob": {"name": "j1", "versionAfter": 3, "backup": "f.dump"}, "pending": 2, "keep": 1}
    new = {"lastJob": {"name": "j2"}, "keep": 1}
    assert replacing(old, new) == {"lastJob": {"name": "j2", "versionAfter": None, "backup": None},
                                   "pending": None, "keep": 1}


def test_lists_and_scalars_are_replaced_whole() -> None:
    assert replacing({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert replacing({"a": {"b": 1}}, {"a": 5}) == {"a": 5}
    assert replacing(None, {"a": 1}) == {"a": 1}
