"""``TuneSearchCV``'s ``param_space`` as a study's parameter list.

A RandomizedSearchCV-style dict (scipy.stats distributions, lists of values) or an
A parameter list of docs/api.md becomes the ``parameters`` of a study spec, with a decoder
per parameter that turns a trial's suggested value back into what the estimator
was given (int vs float, the original object behind a categorical label).

This module imports NumPy; :mod:`tuneforge.sklearn` uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Categorical labels (for values the API cannot carry, such as None) are cut to this length.
_MAX_LABEL = 200


@dataclass(frozen=True)
class SearchSpace:
    """The study's parameter list and how to turn a suggestion back into estimator params."""

    parameters: list[dict[str, Any]]
    decoders: dict[str, Callable[[Any], Any]]

    @property
    def size(self) -> int | None:
        """How many configurations the space has at most; None when it is continuous."""
        total = 1
        try:
            for p in self.parameters:
                if p["type"] in ("discrete", "categorical"):
                    total *= len(p["values"])
                elif p["type"] == "int" or p.get("step") is not None:
                    step = p.get("step") or 1
                    total *= math.floor((p["high"] - p["low"]) / step + 1e-9) + 1
                else:
                    return None
        except (KeyError, TypeError, ValueError):  # a malformed spec: the server says what
            return None
        return total

    def decode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Estimator parameters (in the space's order) from a trial's ``params``."""
        return {
            p["name"]: self.decoders[p["name"]](params[p["name"]])
            for p in self.parameters
            if p["name"] in params
        }


def search_space_of(param_space: Any) -> SearchSpace:
    """Convert ``param_space`` (a docs/api.md parameter list or a RandomizedSearchCV-style dict)."""
    if isinstance(param_space, Mapping):
        if not param_space:
            raise ValueError("param_space is empty: give at least one parameter")
        parameters: list[dict[str, Any]] = []
        decoders: dict[str, Callable[[Any], Any]] = {}
        for name, value in param_space.items():
            if not isinstance(name, str):
                raise ValueError(f"param_space keys must be parameter names, got {name!r}")
            spec, decode = _parameter(name, value)
            parameters.append(spec)
            decoders[name] = decode
        return SearchSpace(parameters, decoders)
    if isinstance(param_space, Sequence) and not isinstance(param_space, str | bytes):
        if not param_space:
            raise ValueError("param_space is empty: give at least one parameter")
        specs = list(param_space)
        if not all(isinstance(s, Mapping) and "name" in s and "type" in s for s in specs):
            raise ValueError(
                "a list param_space must hold tuneforge parameter dicts with 'name' and "
                "'type' (docs/api.md); for several RandomizedSearchCV-style sub-spaces use one "
                "dict with a categorical parent and 'condition's instead"
            )
        return SearchSpace([dict(s) for s in specs], {s["name"]: _typed(s["type"]) for s in specs})
    raise ValueError(
        "param_space must be a dict {name: distribution or list of values} or a list of "
        f"tuneforge parameter dicts, got {type(param_space).__name__}"
    )


def _typed(ptype: Any) -> Callable[[Any], Any]:
    if ptype == "int":
        return int
    if ptype == "float":
        return float
    return _identity


def _identity(value: Any) -> Any:
    return value


def _parameter(name: str, value: Any) -> tuple[dict[str, Any], Callable[[Any], Any]]:
    """One dict entry of a RandomizedSearchCV-style space as a docs/api.md parameter."""
    if isinstance(value, Mapping):
        if "type" not in value:
            raise ValueError(
                f"parameter {name!r}: a dict value must be a tuneforge parameter spec with "
                f"'type' (float | int | discrete | categorical), got {dict(value)!r}"
            )
        return {"name": name, **value}, _typed(value["type"])
    if hasattr(value, "dist") and hasattr(value, "support"):  # a frozen scipy.stats distribution
        return _distribution(name, value)
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes):
        return _choices(name, list(value))
    kind = "distribution" if hasattr(value, "rvs") else "value"
    raise ValueError(
        f"parameter {name!r}: unsupported {kind} {value!r}; use scipy.stats loguniform, "
        "uniform or randint, a list of values, or a tuneforge parameter dict"
    )


def _distribution(name: str, dist: Any) -> tuple[dict[str, Any], Callable[[Any], Any]]:
    kind = getattr(dist.dist, "name", type(dist.dist).__name__)
    low, high = (float(b) for b in dist.support())
    if kind in ("loguniform", "reciprocal"):
        # loguniform(a, b, scale=s) is log-uniform on [a s, b s]; a loc shift makes it not
        if not (
            low > 0 and math.isclose(float(dist.median()), math.sqrt(low * high), rel_tol=1e-9)
        ):
            raise ValueError(
                f"parameter {name!r}: loguniform with a loc shift is not log-uniform on an "
                "interval; use loguniform(a, b) (optionally with scale)"
            )
        return {"name": name, "type": "float", "low": low, "high": high, "scale": "log"}, float
    if kind == "uniform":
        return {"name": name, "type": "float", "low": low, "high": high}, float
    if kind == "randint":
        lo, hi = int(low), int(high)  # support() is [a, b - 1]
        if lo == hi:
            return {"name": name, "type": "discrete", "values": [lo]}, int
        return {"name": name, "type": "int", "low": lo, "high": hi}, int
    raise ValueError(
        f"parameter {name!r}: unsupported distribution scipy.stats.{kind}; use loguniform "
        "(float, log scale), uniform (float) or randint (int), or a list of values"
    )


def _plain(value: Any) -> Any:
    """NumPy scalars as Python scalars (the JSON the server reads)."""
    return value.item() if isinstance(value, np.generic) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_native(value: Any) -> bool:
    """Whether the API can carry this categorical value as it is."""
    if isinstance(value, float):
        return math.isfinite(value)
    return (isinstance(value, str) and len(value) <= 1000) or isinstance(value, int | bool)


def _same(a: Any, b: Any) -> bool:
    """The server's equality of choice values: ``True`` is not ``1``, ``"1"`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return a is b


def _choices(name: str, raw: list[Any]) -> tuple[dict[str, Any], Callable[[Any], Any]]:
    """A list of values: ``discrete`` when all are numbers, else ``categorical``.

    Duplicates are dropped (a study draws values, it does not weight them). Values
    the API cannot carry (None, tuples, estimators...) are sent as their ``repr``
    and mapped back to the original objects.
    """
    if not raw:
        raise ValueError(f"parameter {name!r}: the list of values is empty")
    values: list[Any] = []
    for v in map(_plain, raw):
        if not any(_same(v, seen) for seen in values):
            values.append(v)
    if all(_is_number(v) for v in values):
        spec = {"name": name, "type": "discrete", "values": values}
        return spec, _matcher(values)
    if all(_is_native(v) for v in values):
        return {"name": name, "type": "categorical", "values": values}, _matcher(values)
    labels: dict[str, Any] = {}
    for i, v in enumerate(values):
        label = repr(v)
        if len(label) > _MAX_LABEL:
            label = label[: _MAX_LABEL - 3] + "..."
        if label in labels:
            label = f"{label} #{i}"
        labels[label] = v
    return {"name": name, "type": "categorical", "values": list(labels)}, labels.__getitem__


def _matcher(values: list[Any]) -> Callable[[Any], Any]:
    """Map a value from the server back to the user's value (restoring int vs float)."""

    def decode(value: Any) -> Any:
        for v in values:
            if _same(v, value):
                return v
        return value

    return decode
