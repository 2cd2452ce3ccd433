"""Typed options of algorithms and stopping rules, checked by one mechanism.

Each algorithm and rule declares a small :class:`OptionsModel` (a frozen,
strict pydantic model: ``2.5`` is not an integer, ``true`` is not a number,
``"3"`` is neither). :func:`parse_options` validates a user's options against
it and turns the first problem into :class:`InvalidSpec` naming the field
(``algorithm_options.gamma``) and the rule the value breaks, stated from the
field's own type and bounds. The models double as the JSON schema of the
options.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from .errors import InvalidSpec


class OptionsModel(BaseModel):
    """Base of every options model: unknown keys rejected, no coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class NoOptions(OptionsModel):
    """The options of an algorithm or rule that takes none."""


def parse_options(
    model: type[OptionsModel], options: Mapping[str, Any], *, prefix: str, owner: str
) -> OptionsModel:
    """Validate ``options`` against ``model``; :class:`InvalidSpec` naming ``prefix.<key>``.

    ``owner`` names the algorithm or rule in the message about an unknown key,
    e.g. ``"algorithm 'tpe'"``.
    """
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else ""
        where = f"{prefix}.{key}" if key else prefix
        if error["type"] == "extra_forbidden" or key not in model.model_fields:
            allowed = ", ".join(sorted(model.model_fields)) or "none"
            raise InvalidSpec(
                f"unknown option for {owner} (allowed: {allowed})", field=where
            ) from None
        rule = describe_field(model.model_fields[key])
        raise InvalidSpec(f"{rule}, got {options.get(key)!r}", field=where) from None


def describe_field(info: FieldInfo) -> str:
    """The rule a field's value must follow, in words: ``must be an integer in [1, 10]``."""
    kinds = [t for t in _members(info.annotation) if t is not type(None)]
    nullable = len(kinds) < len(_members(info.annotation))
    kind = " or ".join(_kind_words(t) for t in kinds)
    text = f"{kind}{_bounds(info)}"
    return f"must be null or {text}" if nullable else f"must be {text}"


_KIND_WORDS: dict[Any, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a finite number",
    str: "a string",
}


def _kind_words(kind: Any) -> str:
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(kind))
    return _KIND_WORDS.get(kind, getattr(kind, "__name__", str(kind)))


def _members(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _bounds(info: FieldInfo) -> str:
    low: tuple[Any, str] | None = None
    high: tuple[Any, str] | None = None
    for item in info.metadata:
        if isinstance(item, at.Ge):
            low = (item.ge, "[")
        elif isinstance(item, at.Gt):
            low = (item.gt, "(")
        elif isinstance(item, at.Le):
            high = (item.le, "]")
        elif isinstance(item, at.Lt):
            high = (item.lt, ")")
    if low and high:
        return f" in {low[1]}{low[0]}, {high[0]}{high[1]}"
    if low:
        return f" {'>=' if low[1] == '[' else '>'} {low[0]}"
    if high:
        return f" {'<=' if high[1] == ']' else '<'} {high[0]}"
    return ""
