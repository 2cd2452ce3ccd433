"""Search spaces: parameter specs, conditions, validation and the unit-cube encoding.

A :class:`SearchSpace` is built from the API's parameter list with
:meth:`SearchSpace.from_list`, which checks every rule and names the offending
field (``parameters[2].low``). Every parameter maps to one coordinate of the
unit cube ``[0, 1]^d``: floats linearly or logarithmically, integers and
stepped floats cell-centred so that each admissible value owns an equal slice,
discrete and categorical parameters by the index of their value. Sampling the
cube uniformly therefore samples each parameter uniformly on its own scale.

A parameter with a ``condition`` is *active* only when its parent is active and
takes one of the listed values; inactive parameters are absent from a parameter
set and encode as ``nan``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from .errors import InvalidSpec

MAX_PARAMETERS = 256
MAX_CHOICES = 10_000
MAX_NAME_LENGTH = 128
MAX_CONDITION_DEPTH = 16
MAX_GRID_POINTS = 10_000
#: Bounds of int parameters: integers beyond 2**53 have no exact float (nor JavaScript number).
MAX_INT_BOUND = 2**53

ParamValue = float | int | str | bool


class ParamType(StrEnum):
    FLOAT = "float"
    INT = "int"
    DISCRETE = "discrete"
    CATEGORICAL = "categorical"


class Scale(StrEnum):
    LINEAR = "linear"
    LOG = "log"


@dataclass(frozen=True)
class Condition:
    """The child parameter exists only when ``parent`` takes one of ``values``."""

    parent: str
    values: tuple[ParamValue, ...]


@dataclass(frozen=True)
class Parameter:
    """One hyperparameter. Use :meth:`SearchSpace.from_list` to build validated ones."""

    name: str
    type: ParamType
    low: float | None = None
    high: float | None = None
    scale: Scale = Scale.LINEAR
    step: float | None = None
    values: tuple[ParamValue, ...] = ()
    condition: Condition | None = None
    grid_points: int | None = None

    # ---- sizes -------------------------------------------------------------
    @property
    def n_choices(self) -> int | None:
        """Number of admissible values, or ``None`` for a continuous float."""
        if self.type in (ParamType.DISCRETE, ParamType.CATEGORICAL):
            return len(self.values)
        if self.type == ParamType.INT or self.step is not None:
            assert self.low is not None and self.high is not None
            step = self.step or 1
            return math.floor((self.high - self.low) / step + 1e-9) + 1
        return None

    @property
    def is_numeric(self) -> bool:
        return self.type != ParamType.CATEGORICAL

    # ---- unit-cube encoding --------------------------------------------------
    def encode(self, value: ParamValue) -> float:
        """Map an admissible value to ``[0, 1]``."""
        if self.type in (ParamType.DISCRETE, ParamType.CATEGORICAL):
            return (self._index_of(value) + 0.5) / len(self.values)
        assert self.low is not None and self.high is not None
        v = float(value)
        n = self.n_choices
        if n is not None and self.scale == Scale.LINEAR:
            return (round((v - self.low) / (self.step or 1)) + 0.5) / n
        lo, hi = self._bounds_on_scale()
        x = math.log(v) if self.scale == Scale.LOG else v
        return min(1.0, max(0.0, _unit(x, lo, hi)))

    def decode(self, u: float) -> ParamValue:
        """Map a point of ``[0, 1]`` to the admissible value owning it."""
        u = min(1.0, max(0.0, float(u)))
        if self.type in (ParamType.DISCRETE, ParamType.CATEGORICAL):
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        assert self.low is not None and self.high is not None
        n = self.n_choices
        if n is not None and self.scale == Scale.LINEAR:
            k = min(int(u * n), n - 1)
            return self._grid_value(k)
        lo, hi = self._bounds_on_scale()
        x = _lerp(lo, hi, u)
        v = math.exp(x) if self.scale == Scale.LOG else x
        if self.type == ParamType.FLOAT and u in (0.0, 1.0):  # exact ends, not exp(log(low))
            v = self.low if u == 0.0 else self.high
        if self.type == ParamType.INT:
            return int(min(max(round(v), self.low), self.high))
        if self.step is not None:
            k = round((v - self.low) / self.step)
            return self._grid_value(min(max(k, 0), (n or 1) - 1))
        return float(min(max(v, self.low), self.high))

    def _bounds_on_scale(self) -> tuple[float, float]:
        assert self.low is not None and self.high is not None
        if self.scale == Scale.LOG:
            if self.type == ParamType.INT:  # cell-centred in log space
                return math.log(self.low - 0.5 + 1e-12), math.log(self.high + 0.5)
            return math.log(self.low), math.log(self.high)
        return self.low, self.high

    def _grid_value(self, k: int) -> ParamValue:
        assert self.low is not None
        if self.type == ParamType.INT:
            return int(self.low + k * int(self.step or 1))
        assert self.step is not None
        x = self.low + k * self.step
        r = round(x, 12)  # 0.30000000000000004 -> 0.3, but never merge values of a tiny step
        return float(r if abs(r - x) <= 1e-9 * self.step else x)

    def _index_of(self, value: ParamValue) -> int:
        for i, choice in enumerate(self.values):
            if _same_value(choice, value):
                return i
        raise InvalidSpec(f"{value!r} is not one of {list(self.values)!r}", field=self.name)

    # ---- grid ----------------------------------------------------------------
    def grid_values(self, default_points: int | None = None) -> list[ParamValue]:
        """The values a grid search visits, in increasing order."""
        if self.type in (ParamType.DISCRETE, ParamType.CATEGORICAL):
            return list(self.values)
        assert self.low is not None and self.high is not None
        n = self.n_choices
        points = self.grid_points or (default_points if n is None else None)
        if points is None:
            if n is None:
                raise InvalidSpec(
                    "a grid needs 'step' or 'grid_points' for float parameters",
                    field=self.name,
                )
            return [self._grid_value(k) for k in range(n)]
        if n is not None and points >= n:
            return [self._grid_value(k) for k in range(n)]
        us = [0.0] if points == 1 else [k / (points - 1) for k in range(points)]
        lo, hi = (
            (math.log(self.low), math.log(self.high))
            if self.scale == Scale.LOG
            else (
                self.low,
                self.high,
            )
        )
        raw = [_lerp(lo, hi, u) for u in us]
        vals = [math.exp(x) if self.scale == Scale.LOG else x for x in raw]
        snapped = [self.decode(self.encode(min(max(v, self.low), self.high))) for v in vals]
        return list(dict.fromkeys(snapped))

    @property
    def _is_range(self) -> bool:
        return self.type in (ParamType.FLOAT, ParamType.INT)

    def _full_grid(self) -> bool:
        """Whether the grid visits every admissible value (no ``grid_points`` thinning)."""
        n = self.n_choices
        if n is None:
            return False
        return not self._is_range or self.grid_points is None or self.grid_points >= n

    def _grid_len(self, default_points: int | None) -> int:
        """``len(grid_values(default_points))`` without building a list of every value."""
        if self._full_grid():
            return self.n_choices or 0
        return len(_thinned_grid(self, default_points))

    def _grid_at(self, k: int, default_points: int | None) -> ParamValue:
        """``grid_values(default_points)[k]`` without building a list of every value."""
        if not self._is_range:
            return self.values[k]
        if self._full_grid():
            return self._grid_value(k)
        return _thinned_grid(self, default_points)[k]

    def _grid_index(self, value: Any, default_points: int | None) -> int | None:
        """Position of ``value`` in this parameter's grid, ``None`` if the grid skips it."""
        if not self._is_range:
            return next((i for i, c in enumerate(self.values) if _same_value(c, value)), None)
        if self._full_grid():
            assert self.low is not None
            n = self.n_choices or 0
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            k = round((value - self.low) / (self.step or 1))
            return k if 0 <= k < n and _same_value(self._grid_value(k), value) else None
        table = _thinned_grid(self, default_points)
        return next((i for i, v in enumerate(table) if _same_value(v, value)), None)

    # ---- validation of a value ---------------------------------------------
    def validate_value(self, value: Any, field_name: str) -> ParamValue:
        """Check one value against this parameter and return its canonical form."""
        if self.type in (ParamType.DISCRETE, ParamType.CATEGORICAL):
            for choice in self.values:
                if _same_value(choice, value):
                    return choice
            raise InvalidSpec(
                f"must be one of {list(self.values)!r}, got {value!r}", field=field_name
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidSpec(f"must be a number, got {value!r}", field=field_name)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidSpec("must be finite", field=field_name)
        assert self.low is not None and self.high is not None
        if not (self.low - 1e-12 <= value <= self.high + 1e-12):
            raise InvalidSpec(
                f"must be within [{self.low}, {self.high}], got {value}", field=field_name
            )
        if self.type == ParamType.INT:
            if float(value) != int(value):
                raise InvalidSpec(f"must be an integer, got {value}", field=field_name)
            value = int(value)
        if self.step is not None:
            k = (value - self.low) / self.step
            if abs(k - round(k)) > 1e-6:
                raise InvalidSpec(
                    f"must be low + k * step (step {self.step}), got {value}", field=field_name
                )
        return int(value) if self.type == ParamType.INT else float(value)

    def to_dict(self) -> dict[str, Any]:
        """The API representation of this parameter."""
        out: dict[str, Any] = {"name": self.name, "type": self.type.value}
        if self.type in (ParamType.FLOAT, ParamType.INT):
            out.update(low=self.low, high=self.high, scale=self.scale.value)
            if self.step is not None:
                out["step"] = self.step
        else:
            out["values"] = list(self.values)
            if self.scale == Scale.LOG:
                out["scale"] = self.scale.value
        if self.grid_points is not None:
            out["grid_points"] = self.grid_points
        if self.condition is not None:
            out["condition"] = {
                "parent": self.condition.parent,
                "values": list(self.condition.values),
            }
        return out


def _unit(x: float, lo: float, hi: float) -> float:
    """Where ``x`` lies between ``lo`` and ``hi`` (0 to 1), even when ``hi - lo`` overflows
    (a range such as -1e308 .. 1e308 is wider than the largest float)."""
    width = hi - lo
    if math.isfinite(width):
        return (x - lo) / width
    return (x / 2 - lo / 2) / (hi / 2 - lo / 2)


def _lerp(lo: float, hi: float, u: float) -> float:
    """The point ``u`` of the way from ``lo`` to ``hi``, without overflowing ``hi - lo``."""
    width = hi - lo
    if math.isfinite(width):
        return lo + u * width
    return (1.0 - u) * lo + u * hi


def _same_value(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` apart from ``1`` and ``"1"`` apart from ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b  # exact, even beyond the range of float
    try:
        return bool(float(a) == float(b))
    except (TypeError, ValueError, OverflowError):
        return False


def _key_value(p: Parameter, value: Any) -> str:
    """``repr`` of a value in canonical form: ``1`` and ``1.0`` are one point, so are ``-0.0``
    and ``0.0``; distinct integers stay distinct even beyond the precision of float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return repr(value)
    if p.type == ParamType.FLOAT:
        try:
            return repr(float(value) + 0.0)
        except OverflowError:
            return repr(value)
    if isinstance(value, float) and value.is_integer():
        return repr(int(value))
    return repr(value)


@functools.lru_cache(maxsize=512)
def _thinned_grid_of(
    ptype: ParamType,
    low: float,
    high: float,
    scale: Scale,
    step: float | None,
    grid_points: int | None,
    default_points: int | None,
) -> tuple[ParamValue, ...]:
    p = Parameter("_", ptype, low=low, high=high, scale=scale, step=step, grid_points=grid_points)
    return tuple(p.grid_values(default_points))


def _thinned_grid(p: Parameter, default_points: int | None) -> tuple[ParamValue, ...]:
    """The (at most ``MAX_GRID_POINTS``) grid values of a thinned numeric parameter, cached."""
    assert p.low is not None and p.high is not None
    dp = default_points if p.n_choices is None else None
    return _thinned_grid_of(p.type, p.low, p.high, p.scale, p.step, p.grid_points, dp)


@dataclass(frozen=True)
class SearchSpace:
    """An ordered, validated set of parameters with their conditions."""

    parameters: tuple[Parameter, ...]
    _by_name: dict[str, Parameter] = field(init=False, repr=False, compare=False)
    _children: dict[str, tuple[Parameter, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {p.name: p for p in self.parameters}
        children: dict[str, list[Parameter]] = {}
        for p in self.parameters:
            if p.condition is not None:
                children.setdefault(p.condition.parent, []).append(p)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_children", {k: tuple(v) for k, v in children.items()})

    # ---- construction ----------------------------------------------------------
    @classmethod
    def from_list(
        cls, specs: Sequence[Mapping[str, Any]], prefix: str = "parameters"
    ) -> SearchSpace:
        """Validate the API's parameter list and build a space; raises :class:`InvalidSpec`."""
        from .space_validation import parse_parameters

        return cls(parse_parameters(specs, prefix))

    def to_list(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.parameters]

    # ---- structure -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.parameters)

    def __getitem__(self, name: str) -> Parameter:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def is_conditional(self) -> bool:
        return any(p.condition is not None for p in self.parameters)

    def roots(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.condition is None)

    def children(self, name: str) -> tuple[Parameter, ...]:
        return self._children.get(name, ())

    def is_active(self, param: Parameter, params: Mapping[str, Any]) -> bool:
        """Whether ``param`` exists given the (partial) assignment ``params``."""
        cond = param.condition
        if cond is None:
            return True
        parent = self._by_name[cond.parent]
        if parent.name not in params or not self.is_active(parent, params):
            return False
        return any(_same_value(v, params[parent.name]) for v in cond.values)

    # ---- parameter sets --------------------------------------------------------
    def validate_params(self, params: Any, prefix: str = "params") -> dict[str, ParamValue]:
        """Check a complete parameter set and return it in canonical form (space order)."""
        if not isinstance(params, Mapping):
            raise InvalidSpec("must be an object mapping parameter names to values", field=prefix)
        for name in params:
            if name not in self._by_name:
                raise InvalidSpec(f"unknown parameter {name!r}", field=f"{prefix}.{name}")
        out: dict[str, ParamValue] = {}
        for p in self._topological():
            active = self.is_active(p, out)
            if active and p.name not in params:
                raise InvalidSpec(
                    "missing value for an active parameter", field=f"{prefix}.{p.name}"
                )
            if not active and p.name in params:
                assert p.condition is not None
                raise InvalidSpec(
                    f"parameter is inactive unless {p.condition.parent!r} is one of "
                    f"{list(p.condition.values)!r}",
                    field=f"{prefix}.{p.name}",
                )
            if active:
                out[p.name] = p.validate_value(params[p.name], f"{prefix}.{p.name}")
        return {name: out[name] for name in self.names if name in out}

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Unit-cube coordinates of a parameter set; inactive parameters are ``nan``."""
        return np.array(
            [p.encode(params[p.name]) if p.name in params else np.nan for p in self.parameters],
            dtype=float,
        )

    def decode(self, u: Sequence[float] | np.ndarray) -> dict[str, ParamValue]:
        """The parameter set at a point of the unit cube (inactive coordinates are ignored)."""
        index = {p.name: i for i, p in enumerate(self.parameters)}
        out: dict[str, ParamValue] = {}
        for p in self._topological():
            if self.is_active(p, out):
                x = u[index[p.name]]
                out[p.name] = p.decode(0.5 if np.isnan(x) else float(x))
        return {name: out[name] for name in self.names if name in out}

    def sample(self, rng: np.random.Generator) -> dict[str, ParamValue]:
        """One parameter set drawn uniformly (on each parameter's own scale)."""
        return self.decode(rng.random(len(self.parameters)))

    def key(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """A hashable identity of a parameter set, for duplicate detection.

        Values are compared in canonical form, so ``{"x": 1}`` and ``{"x": 1.0}``
        are the same point of a float parameter.
        """
        return tuple(
            (p.name, _key_value(p, params[p.name])) for p in self.parameters if p.name in params
        )

    def _topological(self) -> list[Parameter]:
        order: list[Parameter] = []
        stack = list(reversed(self.roots()))
        while stack:
            p = stack.pop()
            order.append(p)
            stack.extend(reversed(self.children(p.name)))
        return order

    # ---- grid --------------------------------------------------------------------
    def grid_size(self, default_points: int | None = None) -> int:
        """How many distinct parameter sets a full grid holds (conditions respected)."""
        return math.prod(self._subtree_size(p, default_points) for p in self.roots())

    def grid_point(self, index: int, default_points: int | None = None) -> dict[str, ParamValue]:
        """The ``index``-th grid point in a fixed mixed-radix order, ``0 <= index < size``."""
        out: dict[str, ParamValue] = {}
        self._assign_group(self.roots(), index, default_points, out)
        return {name: out[name] for name in self.names if name in out}

    def iter_grid(self, default_points: int | None = None) -> Iterator[dict[str, ParamValue]]:
        for i in range(self.grid_size(default_points)):
            yield self.grid_point(i, default_points)

    def _switches(
        self, p: Parameter, default_points: int | None
    ) -> list[tuple[int, tuple[Parameter, ...], int]]:
        """Grid positions of ``p`` that turn children on: (position, children, subtree size)."""
        found: dict[int, list[Parameter]] = {}
        for child in self.children(p.name):
            assert child.condition is not None
            positions = {p._grid_index(v, default_points) for v in child.condition.values}
            for k in positions - {None}:
                assert k is not None
                found.setdefault(k, []).append(child)
        return [
            (k, tuple(kids), math.prod(self._subtree_size(c, default_points) for c in kids))
            for k, kids in sorted(found.items())
        ]

    def _subtree_size(self, p: Parameter, default_points: int | None) -> int:
        switches = self._switches(p, default_points)
        plain = p._grid_len(default_points) - len(switches)
        return plain + sum(size for _, _, size in switches)

    def _assign_group(
        self,
        group: Sequence[Parameter],
        index: int,
        default_points: int | None,
        out: dict[str, ParamValue],
    ) -> None:
        for p in group:
            size = self._subtree_size(p, default_points)
            self._assign_subtree(p, index % size, default_points, out)
            index //= size

    def _assign_subtree(
        self, p: Parameter, index: int, default_points: int | None, out: dict[str, ParamValue]
    ) -> None:
        # The grid of p in order: plain values own one index each, a value that turns
        # children on owns a block as large as the grid of those children.
        prev = -1
        for k, kids, size in self._switches(p, default_points):
            gap = k - prev - 1
            if index < gap:
                break
            index -= gap
            if index < size:
                out[p.name] = p._grid_at(k, default_points)
                self._assign_group(kids, index, default_points, out)
                return
            index -= size
            prev = k
        k = prev + 1 + index
        if k >= p._grid_len(default_points):
            raise IndexError("grid index out of range")
        out[p.name] = p._grid_at(k, default_points)
