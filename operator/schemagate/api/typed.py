"""Status documents checked against the pydantic models that generate the CRD: a field the CRD lacks, or a
value of the wrong type, is the operator's bug and fails where it is written, not silently in the apiserver
(which prunes unknown fields of a structural schema without a word).

The operator assembles status as plain dicts (merge patches need the nulls that remove fields); this is the
one place that holds them to the models, so a field renamed in a model is renamed everywhere or fails.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel


class StatusFieldError(ValueError):
    """A status the CRD cannot hold."""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model inside `X | None`, `list[X]`, `Annotated[...]`; None for a scalar or a free-form map."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def unknown_fields(model: type[BaseModel], doc: Any, where: str = "status") -> list[str]:
    """The paths in `doc` (camelCase, as stored) that `model` does not define."""
    if isinstance(doc, list):
        return [p for i, item in enumerate(doc) for p in unknown_fields(model, item, f"{where}[{i}]")]
    if not isinstance(doc, Mapping):
        return []
    by_alias = {(f.alias or name): f for name, f in model.model_fields.items()}
    out: list[str] = []
    for key, value in doc.items():
        found = by_alias.get(key)
        if found is None:
            out.append(f"{where}.{key}")
            continue
        inner = _model_of(found.annotation)
        if inner is not None and value is not None:
            out += unknown_fields(inner, value, f"{where}.{key}")
    return out


def check(model: type[BaseModel], doc: Mapping[str, Any]) -> None:
    """Raise StatusFieldError unless `doc` (nulls removed) is a valid `model`, every field of it known."""
    unknown = unknown_fields(model, doc)
    if unknown:
        raise StatusFieldError(f"{model.__name__} has no field {', '.join(unknown)}")
    try:
        model.model_validate(doc)
    except ValueError as e:
        raise StatusFieldError(f"not a valid {model.__name__}: {e}") from None
