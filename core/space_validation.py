"""Parsing and validation of the API's parameter list into :class:`Parameter` objects.

Each rule failure raises :class:`InvalidSpec` whose ``field`` is the JSON path
of the offending input, e.g. ``parameters[1].high``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidSpec
from .space import (
    MAX_CHOICES,
    MAX_CONDITION_DEPTH,
    MAX_GRID_POINTS,
    MAX_INT_BOUND,
    MAX_NAME_LENGTH,
    MAX_PARAMETERS,
    Condition,
    Parameter,
    ParamType,
    ParamValue,
    Scale,
    _same_value,
)

_NUMERIC_KEYS = {"name", "type", "low", "high", "scale", "step", "condition", "grid_points"}
_CHOICE_KEYS = {"name", "type", "values", "condition", "scale"}


def parse_parameters(specs: Any, prefix: str = "parameters") -> tuple[Parameter, ...]:
    """Validate a list of parameter dicts; see the module docstring for the rules."""
    if not isinstance(specs, Sequence) or isinstance(specs, str | bytes):
        raise InvalidSpec("must be a list of parameter objects", field=prefix)
    if not specs:
        raise InvalidSpec("must hold at least one parameter", field=prefix)
    if len(specs) > MAX_PARAMETERS:
        raise InvalidSpec(f"at most {MAX_PARAMETERS} parameters are allowed", field=prefix)
    params: list[Parameter] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        where = f"{prefix}[{i}]"
        p = _parse_one(spec, where)
        if p.name in seen:
            raise InvalidSpec(
                f"duplicate parameter name {p.name!r} (also {prefix}[{seen[p.name]}])",
                field=f"{where}.name",
            )
        seen[p.name] = i
        params.append(p)
    _check_conditions(params, prefix)
    return tuple(params)


def _parse_one(spec: Any, where: str) -> Parameter:
    if not isinstance(spec, Mapping):
        raise InvalidSpec("must be an object", field=where)
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise InvalidSpec(
            "must be a non-empty string without surrounding spaces", field=f"{where}.name"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSpec(f"must be at most {MAX_NAME_LENGTH} characters", field=f"{where}.name")
    raw_type = spec.get("type")
    try:
        ptype = ParamType(str(raw_type))
    except ValueError:
        raise InvalidSpec(
            f"must be one of float, int, discrete, categorical; got {raw_type!r}",
            field=f"{where}.type",
        ) from None
    allowed = _NUMERIC_KEYS if ptype in (ParamType.FLOAT, ParamType.INT) else _CHOICE_KEYS
    for key in spec:
        if key not in allowed:
            raise InvalidSpec(
                f"unknown field for a {ptype.value} parameter (allowed: {sorted(allowed)})",
                field=f"{where}.{key}",
            )
    condition = _parse_condition(spec.get("condition"), f"{where}.condition")
    if ptype in (ParamType.FLOAT, ParamType.INT):
        return _parse_numeric(spec, name, ptype, condition, where)
    return _parse_choices(spec, name, ptype, condition, where)


def _number(spec: Mapping[str, Any], key: str, where: str, *, required: bool) -> float | None:
    value = spec.get(key)
    if value is None:
        if required:
            raise InvalidSpec("is required", field=f"{where}.{key}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSpec(f"must be a number, got {value!r}", field=f"{where}.{key}")
    if not _is_finite(value):
        raise InvalidSpec("must be finite", field=f"{where}.{key}")
    return float(value)


def _is_finite(value: int | float) -> bool:
    """Whether a number is finite and fits a float (a huge JSON integer does not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _parse_scale(spec: Mapping[str, Any], where: str) -> Scale:
    raw = spec.get("scale", "linear")
    try:
        return Scale(raw)
    except ValueError:
        raise InvalidSpec(
            f"must be 'linear' or 'log', got {raw!r}", field=f"{where}.scale"
        ) from None


def _parse_numeric(
    spec: Mapping[str, Any], name: str, ptype: ParamType, condition: Condition | None, where: str
) -> Parameter:
    low = _number(spec, "low", where, required=True)
    high = _number(spec, "high", where, required=True)
    step = _number(spec, "step", where, required=False)
    assert low is not None and high is not None
    scale = _parse_scale(spec, where)
    if not low < high:
        raise InvalidSpec(f"must be greater than low ({low}), got {high}", field=f"{where}.high")
    if ptype == ParamType.INT:
        for key, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and not float(value).is_integer():
                raise InvalidSpec(
                    f"must be an integer for an int parameter, got {value}", field=f"{where}.{key}"
                )
            raw = spec[key] if value is not None else 0  # the JSON number: 2**53 + 1 stays exact
            if abs(raw) > MAX_INT_BOUND:
                raise InvalidSpec(
                    f"must be between -2**53 and 2**53 for an int parameter, got {raw}",
                    field=f"{where}.{key}",
                )
    if scale == Scale.LOG and low <= 0:
        raise InvalidSpec(f"log scale needs low > 0, got {low}", field=f"{where}.low")
    if step is not None:
        if step <= 0:
            raise InvalidSpec(f"must be > 0, got {step}", field=f"{where}.step")
        if step > high - low:
            raise InvalidSpec(
                f"must be at most high - low ({high - low}), got {step}", field=f"{where}.step"
            )
        if scale == Scale.LOG and (ptype == ParamType.FLOAT or step != 1):
            raise InvalidSpec("a step cannot be combined with log scale", field=f"{where}.step")
        if (high - low) / step + 1 > 1e12:
            raise InvalidSpec(
                "too many steps between low and high (at most 1e12)", field=f"{where}.step"
            )
    grid_points = spec.get("grid_points")
    if grid_points is not None and (
        isinstance(grid_points, bool)
        or not isinstance(grid_points, int)
        or not 1 <= grid_points <= MAX_GRID_POINTS
    ):
        raise InvalidSpec(
            f"must be an integer in [1, {MAX_GRID_POINTS}], got {grid_points!r}",
            field=f"{where}.grid_points",
        )
    if ptype == ParamType.INT:
        return Parameter(
            name,
            ptype,
            low=int(low),
            high=int(high),
            scale=scale,
            step=int(step) if step is not None else None,
            condition=condition,
            grid_points=grid_points,
        )
    return Parameter(
        name,
        ptype,
        low=low,
        high=high,
        scale=scale,
        step=step,
        condition=condition,
        grid_points=grid_points,
    )


def _parse_choices(
    spec: Mapping[str, Any], name: str, ptype: ParamType, condition: Condition | None, where: str
) -> Parameter:
    values = spec.get("values")
    field = f"{where}.values"
    if not isinstance(values, Sequence) or isinstance(values, str | bytes) or not values:
        raise InvalidSpec("must be a non-empty list", field=field)
    if len(values) > MAX_CHOICES:
        raise InvalidSpec(f"at most {MAX_CHOICES} values are allowed", field=field)
    for j, v in enumerate(values):
        _check_choice(v, ptype, f"{field}[{j}]")
        for k in range(j):
            if _same_value(values[k], v):
                raise InvalidSpec(
                    f"duplicate value {v!r} (also at index {k})", field=f"{field}[{j}]"
                )
    scale = _parse_scale(spec, where)
    if ptype == ParamType.CATEGORICAL and "scale" in spec:
        raise InvalidSpec("categorical parameters have no scale", field=f"{where}.scale")
    choices: tuple[ParamValue, ...] = tuple(values)
    if ptype == ParamType.DISCRETE:
        if scale == Scale.LOG and min(float(v) for v in values) <= 0:
            raise InvalidSpec("log scale needs every value > 0", field=field)
        choices = tuple(sorted(values, key=float))
    return Parameter(name, ptype, values=choices, scale=scale, condition=condition)


def _check_choice(value: Any, ptype: ParamType, field: str) -> None:
    if ptype == ParamType.DISCRETE:
        if isinstance(value, bool) or not isinstance(value, int | float) or not _is_finite(value):
            raise InvalidSpec(f"discrete values must be finite numbers, got {value!r}", field=field)
        return
    if not isinstance(value, str | int | float | bool):
        raise InvalidSpec(
            f"categorical values must be strings, numbers or booleans, got {value!r}", field=field
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidSpec("must be finite", field=field)
    if isinstance(value, str) and len(value) > 1000:
        raise InvalidSpec("must be at most 1000 characters", field=field)


def _parse_condition(raw: Any, where: str) -> Condition | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidSpec("must be an object with 'parent' and 'values'", field=where)
    for key in raw:
        if key not in ("parent", "values"):
            raise InvalidSpec("unknown field (allowed: parent, values)", field=f"{where}.{key}")
    parent = raw.get("parent")
    if not isinstance(parent, str) or not parent:
        raise InvalidSpec("must name the parent parameter", field=f"{where}.parent")
    values = raw.get("values")
    if not isinstance(values, Sequence) or isinstance(values, str | bytes) or not values:
        raise InvalidSpec("must be a non-empty list of parent values", field=f"{where}.values")
    return Condition(parent=parent, values=tuple(values))


def _check_conditions(params: list[Parameter], prefix: str) -> None:
    by_name = {p.name: (i, p) for i, p in enumerate(params)}
    for i, p in enumerate(params):
        if p.condition is None:
            continue
        where = f"{prefix}[{i}].condition"
        if p.condition.parent == p.name:
            raise InvalidSpec("a parameter cannot be its own parent", field=f"{where}.parent")
        if p.condition.parent not in by_name:
            raise InvalidSpec(
                f"unknown parent parameter {p.condition.parent!r}", field=f"{where}.parent"
            )
        _, parent = by_name[p.condition.parent]
        if parent.type == ParamType.FLOAT:
            raise InvalidSpec(
                "the parent of a condition must be int, discrete or categorical, not float",
                field=f"{where}.parent",
            )
        for j, v in enumerate(p.condition.values):
            try:
                parent.validate_value(v, f"{where}.values[{j}]")
            except InvalidSpec as exc:
                raise InvalidSpec(
                    f"is not a value of parent {parent.name!r}: {exc.message}",
                    field=f"{where}.values[{j}]",
                ) from None
        _check_depth(p, by_name, where)


def _check_depth(p: Parameter, by_name: Mapping[str, tuple[int, Parameter]], where: str) -> None:
    seen = {p.name}
    depth = 0
    node = p
    while node.condition is not None:
        parent_name = node.condition.parent
        if parent_name in seen:
            raise InvalidSpec(
                f"conditions form a cycle through {parent_name!r}", field=f"{where}.parent"
            )
        seen.add(parent_name)
        depth += 1
        if depth > MAX_CONDITION_DEPTH:
            raise InvalidSpec(f"conditions nest deeper than {MAX_CONDITION_DEPTH}", field=where)
        node = by_name[parent_name][1]
