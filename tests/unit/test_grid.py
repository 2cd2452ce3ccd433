"""Grid search: full coverage exactly once, exhaustion, skipping, options and the permutation."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from scipy import stats

from tuneforge.core.algorithms import Suggestion, SuggestRequest, validate_algorithm
from tuneforge.core.algorithms.grid import FeistelPermutation, GridSearch
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.space import SearchSpace
from tuneforge.core.trials import Metric, Trial, TrialState

METRICS = (Metric("loss"),)

CONDITIONAL: list[dict[str, Any]] = [
    {"name": "model", "type": "categorical", "values": ["svm", "tree", "knn"]},
    {
        "name": "kernel",
        "type": "categorical",
        "values": ["rbf", "poly"],
        "condition": {"parent": "model", "values": ["svm"]},
    },
    {
        "name": "degree",
        "type": "int",
        "low": 2,
        "high": 4,
        "condition": {"parent": "kernel", "values": ["poly"]},
    },
    {
        "name": "depth",
        "type": "int",
        "low": 1,
        "high": 10,
        "step": 3,
        "condition": {"parent": "model", "values": ["tree"]},
    },
    {"name": "lr", "type": "float", "low": 1e-3, "high": 1.0, "scale": "log"},
]
DIGITS: list[dict[str, Any]] = [
    {"name": f"d{i}", "type": "int", "low": 0, "high": 9} for i in range(12)
]


def ask(
    space: SearchSpace,
    *,
    count: int,
    seed: int = 0,
    state: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    in_flight: Sequence[Trial] = (),
) -> Suggestion:
    algo = GridSearch(validate_algorithm("grid", dict(options or {}), space))
    return algo.suggest(SuggestRequest(space, METRICS, (), tuple(in_flight), count, seed, state))


def walk(space: SearchSpace, count: int, seed: int = 0, **kw: Any) -> list[Suggestion]:
    """Call until exhausted, feeding the state forward."""
    out: list[Suggestion] = []
    state = None
    while not (out and out[-1].exhausted):
        out.append(ask(space, count=count, seed=seed, state=state, **kw))
        state = out[-1].state
        assert len(out) < 10_000
    return out


@pytest.mark.parametrize(
    ("specs", "options"),
    [
        (CONDITIONAL, {"grid_points": 3}),
        (CONDITIONAL, {"grid_points": 1}),
        ([{"name": "only", "type": "categorical", "values": ["one"]}], {}),
        ([{"name": "x", "type": "float", "low": 0, "high": 1, "step": 0.5}], {}),
    ],
)
@pytest.mark.parametrize("count", [1, 3, 7])
def test_every_point_exactly_once_then_exhausted(
    specs: Any, options: dict[str, Any], count: int
) -> None:
    space = SearchSpace.from_list(specs)
    size = space.grid_size(options.get("grid_points"))
    calls = walk(space, count, options=options)
    handed = [p for s in calls for p in s.params]
    assert len(handed) == size
    assert {space.key(p) for p in handed} == {
        space.key(p) for p in space.iter_grid(options.get("grid_points"))
    }
    assert all(space.validate_params(p) == p for p in handed)
    assert all(len(s.params) == count and not s.exhausted for s in calls[:-1])
    assert len(calls) == -(-size // count)  # the call handing out the last point says so
    assert calls[-1].exhausted and calls[-1].state == {"next_index": size}
    after = ask(space, count=count, state=calls[-1].state, options=options)
    assert after.params == () and after.exhausted


def test_order_is_shuffled_by_the_seed() -> None:
    space = SearchSpace.from_list(CONDITIONAL)
    assert space.grid_size(4) == 36
    orders = [
        [space.key(p) for p in ask(space, count=20, seed=s, options={"grid_points": 4}).params]
        for s in (0, 1)
    ]
    assert orders[0] != orders[1]
    plain = [space.key(p) for p in list(space.iter_grid(4))[:20]]
    assert orders[0] != plain and set(orders[0]) != set(plain)


def test_queued_and_running_points_are_skipped() -> None:
    space = SearchSpace.from_list(CONDITIONAL)
    grid = list(space.iter_grid(2))
    # A user-queued trial in non-canonical form (1 for the float 1.0) is still recognised.
    last = next(p for p in grid if p["lr"] == 1.0)
    queued = [{**last, "lr": 1}, grid[4], grid[11]]
    assert len({space.key(p) for p in queued}) == 3
    trials = [Trial(number=i, state=TrialState.REQUESTED, params=p) for i, p in enumerate(queued)]
    handed = [
        p for s in walk(space, 4, options={"grid_points": 2}, in_flight=trials) for p in s.params
    ]
    assert len(handed) == len(grid) - 3
    assert {space.key(p) for p in handed} == {space.key(p) for p in grid} - {
        space.key(p) for p in queued
    }


def test_a_grid_of_a_trillion_points_is_cheap() -> None:
    space = SearchSpace.from_list(DIGITS)
    assert space.grid_size() == 10**12
    started = time.perf_counter()
    first = ask(space, count=8)
    last = ask(space, count=8, state={"next_index": 10**12 - 3})
    assert time.perf_counter() - started < 2.0
    assert len({space.key(p) for p in first.params}) == 8 and first.state == {"next_index": 8}
    assert len(last.params) == 3 and last.exhausted


def test_the_grid_points_option_fills_in_for_bare_floats_only() -> None:
    space = SearchSpace.from_list(
        [
            {"name": "x", "type": "float", "low": 0, "high": 1},
            {"name": "y", "type": "float", "low": 0, "high": 1, "grid_points": 2},
            {"name": "z", "type": "float", "low": 0, "high": 1, "step": 0.5},
            {"name": "n", "type": "int", "low": 0, "high": 9},
        ]
    )
    handed = [p for s in walk(space, 50, options={"grid_points": 4}) for p in s.params]
    assert len(handed) == 4 * 2 * 3 * 10
    assert sorted({p["x"] for p in handed}) == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert {p["y"] for p in handed} == {0.0, 1.0} and {p["z"] for p in handed} == {0, 0.5, 1}


@pytest.mark.parametrize(
    ("specs", "options", "field"),
    [
        (CONDITIONAL, {}, "parameters[4].grid_points"),
        (CONDITIONAL, {"grid_points": 0}, "algorithm_options.grid_points"),
        (CONDITIONAL, {"grid_points": 2.5}, "algorithm_options.grid_points"),
        (CONDITIONAL, {"grid_points": True}, "algorithm_options.grid_points"),
        (CONDITIONAL, {"grid_points": "3"}, "algorithm_options.grid_points"),
        (CONDITIONAL, {"grid_points": 10_001}, "algorithm_options.grid_points"),
        (CONDITIONAL, {"points": 3}, "algorithm_options.points"),
        ([*DIGITS, {"name": "x", "type": "int", "low": 0, "high": 1}], {}, "parameters"),
        (
            [{"name": f"f{i}", "type": "float", "low": 0, "high": 1} for i in range(4)],
            {"grid_points": 10_000},
            "algorithm_options.grid_points",
        ),
    ],
)
def test_invalid_grids_are_rejected(specs: Any, options: dict[str, Any], field: str) -> None:
    space = SearchSpace.from_list(specs)
    with pytest.raises(InvalidSpec) as info:
        validate_algorithm("grid", options, space)
    assert info.value.field == field


def test_valid_options_are_completed() -> None:
    space = SearchSpace.from_list(CONDITIONAL)
    assert validate_algorithm("grid", {"grid_points": 3}, space) == {"grid_points": 3}
    space = SearchSpace.from_list(DIGITS)
    assert validate_algorithm("grid", {}, space) == {"grid_points": None}


# ---- the permutation -----------------------------------------------------------------------
SIZES = [1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 32, 33, 97, 127, 128, 1000, 1024, 4099, 65_536]


@pytest.mark.parametrize("n", SIZES)
def test_the_permutation_is_a_bijection(n: int) -> None:
    for seed in (0, 1, 12345):
        perm = FeistelPermutation(n, seed)
        assert sorted(map(perm, range(n))) == list(range(n))


@pytest.mark.parametrize("n", [s for s in SIZES if s >= 5])
def test_the_permutation_depends_on_the_seed(n: int) -> None:
    orders = {tuple(map(FeistelPermutation(n, seed), range(n))) for seed in range(4)}
    assert len(orders) == 4
    assert tuple(range(n)) not in orders


def test_small_permutations_take_every_order() -> None:
    orders = {tuple(map(FeistelPermutation(3, seed), range(3))) for seed in range(60)}
    assert len(orders) == 6


def test_the_permutation_looks_random() -> None:
    n = 5000
    values = list(map(FeistelPermutation(n, 7), range(n)))
    assert abs(stats.spearmanr(np.arange(n), values).statistic) < 0.05
    firsts = np.array([FeistelPermutation(64, seed)(0) for seed in range(6400)])
    assert np.bincount(firsts, minlength=64) == pytest.approx([100] * 64, abs=45)


def test_huge_permutations_stay_in_range_and_reject_bad_positions() -> None:
    for n in (10**9, 10**12, 2**40 + 1):
        perm = FeistelPermutation(n, 3)
        values = [perm(i) for i in range(2000)] + [perm(n - 1 - i) for i in range(2000)]
        assert len(set(values)) == 4000 and all(0 <= v < n for v in values)
        with pytest.raises(IndexError):
            perm(n)
    with pytest.raises(IndexError):
        FeistelPermutation(10, 0)(-1)
    with pytest.raises(ValueError):
        FeistelPermutation(0, 0)
