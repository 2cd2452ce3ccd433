"""Float ranges wider than the largest float (``high - low`` overflows) and int bounds.

Every algorithm works in the unit cube; a range such as -1e308 .. 1e308 must map
onto it without overflowing, or every suggestion collapses onto a bound.
"""

from __future__ import annotations

import itertools
import math

import pytest

from tests.unit.test_algorithms_contract import ask, make
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.space import MAX_INT_BOUND, SearchSpace
from tuneforge.core.trials import Trial, TrialState

HUGE = [
    {"name": "x", "type": "float", "low": -1e308, "high": 1e308},
    {"name": "y", "type": "float", "low": -1.7976931348623157e308, "high": 1.0},
]


def test_encoding_a_range_wider_than_the_largest_float_is_finite_and_monotone() -> None:
    x = SearchSpace.from_list(HUGE).parameters[0]
    us = [x.encode(v) for v in (-1e308, -5e307, 0.0, 5e307, 1e308)]
    assert us == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    values = [x.decode(u / 10) for u in range(11)]
    assert values[0] == -1e308 and values[-1] == 1e308
    assert all(a < b for a, b in itertools.pairwise(values))
    assert all(math.isfinite(v) for v in values)
    assert x.decode(x.encode(3e307)) == pytest.approx(3e307)


def bowl(params: dict[str, float]) -> float:
    """A loss with its minimum inside the huge box (x = 0.3e308, y = -0.2 * 1.79e308)."""
    return (params["x"] / 1e308 - 0.3) ** 2 + (params["y"] / 1.79e308 + 0.2) ** 2


def completed(params: list[dict[str, float]]) -> list[Trial]:
    return [
        Trial(number=i, state=TrialState.COMPLETED, params=dict(p), values={"loss": bowl(p)})
        for i, p in enumerate(params)
    ]


@pytest.mark.parametrize("name", ["random", "sobol", "tpe", "gp", "cmaes"])
def test_huge_ranges_give_distinct_in_bound_suggestions(name: str) -> None:
    algo, space = make(name, HUGE)
    history: list[dict[str, float]] = []
    state = None
    for _ in range(3):  # later rounds see completed trials (the history encoding)
        out = ask(algo, space, count=4, seed=7, state=state, completed=completed(history))
        history.extend(out.params)
        state = out.state
    xs = [p["x"] for p in history]
    ys = [p["y"] for p in history]
    assert len(set(zip(xs, ys, strict=True))) == 12, "a repeated point"
    assert len(set(xs)) == 12 and len(set(ys)) == 12
    assert all(-1e308 <= v <= 1e308 for v in xs)
    assert all(-1.7976931348623157e308 <= v <= 1.0 for v in ys)
    assert sum(abs(v) < 9e307 for v in xs) >= 6, "suggestions collapse onto the bounds"


@pytest.mark.parametrize(
    ("low", "high", "field"),
    [
        (0, MAX_INT_BOUND + 1, "parameters[0].high"),
        (-(10**308), 0, "parameters[0].low"),
        (-MAX_INT_BOUND - 2, 5, "parameters[0].low"),
    ],
)
def test_int_bounds_beyond_2_pow_53_are_rejected(low: int, high: int, field: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        SearchSpace.from_list([{"name": "n", "type": "int", "low": low, "high": high}])
    assert caught.value.field == field and "2**53" in caught.value.message


def test_int_bounds_at_2_pow_53_work() -> None:
    spec = [{"name": "n", "type": "int", "low": -MAX_INT_BOUND, "high": MAX_INT_BOUND}]
    algo, space = make("random", spec)
    values = [p["n"] for p in ask(algo, space, count=8).params]
    assert len(set(values)) == 8 and all(abs(v) <= MAX_INT_BOUND for v in values)


def test_a_grid_over_the_whole_float_range_is_evenly_spaced() -> None:
    top = 1.7976931348623157e308
    spec = [{"name": "x", "type": "float", "low": -top, "high": top, "grid_points": 5}]
    (x,) = SearchSpace.from_list(spec).parameters
    assert x.grid_values() == pytest.approx([-top, -top / 2, 0.0, top / 2, top], rel=1e-12)
