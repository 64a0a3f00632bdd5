"""The JSON merge patch (RFC 7386) that replaces, not merges (pure).

Status and a set's children go out as merge patches, which merge objects key by key: a key the new value
lacks would keep its old value (a new lastJob would keep the previous run's versionAfter, a child's spec a
field the set no longer gives). `replacing` sends those keys as null."""

from __future__ import annotations

from typing import Any


def replacing(old: Any, new: Any) -> Any:
    """`new` with every key `old` had and `new` lacks set to null, in nested objects too."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    out = {k: replacing(old.get(k), v) for k, v in new.items()}
    out.update({k: None for k in old if k not in new})
    return out
