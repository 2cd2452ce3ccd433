"""The contract every suggestion algorithm keeps; new algorithms join automatically.

Each test runs once per name in :func:`algorithm_names`, with the algorithm's
default options. The spaces give every float ``grid_points`` so that the grid
(and anything else needing a finite space) can handle them.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from scipy.stats import qmc

from tuneforge.core.algorithms import (
    Algorithm,
    Suggestion,
    SuggestRequest,
    algorithm_names,
    create_algorithm,
    validate_algorithm,
)
from tuneforge.core.space import SearchSpace
from tuneforge.core.trials import Metric, Trial, TrialState

METRICS = (Metric("loss", goal="minimize"),)  # type: ignore[arg-type]

MIXED: list[dict[str, Any]] = [
    {"name": "lr", "type": "float", "low": 1e-5, "high": 0.1, "scale": "log", "grid_points": 5},
    {"name": "depth", "type": "int", "low": 1, "high": 8},
    {"name": "batch", "type": "discrete", "values": [16, 32, 64]},
    {"name": "opt", "type": "categorical", "values": ["adam", "sgd", "rmsprop"]},
    {
        "name": "momentum",
        "type": "float",
        "low": 0.0,
        "high": 0.99,
        "grid_points": 4,
        "condition": {"parent": "opt", "values": ["sgd", "rmsprop"]},
    },
    {
        "name": "nesterov",
        "type": "categorical",
        "values": [True, False],
        "condition": {"parent": "opt", "values": ["sgd"]},
    },
    {
        "name": "decay",
        "type": "float",
        "low": 0.0,
        "high": 1.0,
        "step": 0.25,
        "condition": {"parent": "nesterov", "values": [True]},
    },
]
#: Six points.
SMALL: list[dict[str, Any]] = [
    {"name": "a", "type": "int", "low": 0, "high": 2},
    {"name": "b", "type": "categorical", "values": ["x", "y"]},
]
#: Three points: {c: p, d: 0}, {c: p, d: 1}, {c: q}.
CONDITIONAL: list[dict[str, Any]] = [
    {"name": "c", "type": "categorical", "values": ["p", "q"]},
    {
        "name": "d",
        "type": "int",
        "low": 0,
        "high": 1,
        "condition": {"parent": "c", "values": ["p"]},
    },
]
#: 4 * 3 * 2 = 24 points.
MEDIUM: list[dict[str, Any]] = [
    {"name": "n", "type": "int", "low": 0, "high": 30, "step": 10},
    {"name": "f", "type": "float", "low": 0.0, "high": 1.0, "step": 0.5},
    {"name": "g", "type": "discrete", "values": [1, 2]},
]


@pytest.fixture(params=algorithm_names())
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(name: str, specs: Sequence[Mapping[str, Any]]) -> tuple[Algorithm, SearchSpace]:
    space = SearchSpace.from_list(specs)
    return create_algorithm(name, validate_algorithm(name, {}, space), space), space


def ask(
    algo: Algorithm,
    space: SearchSpace,
    *,
    count: int = 1,
    seed: int = 0,
    state: Mapping[str, Any] | None = None,
    completed: Sequence[Trial] = (),
    in_flight: Sequence[Trial] = (),
) -> Suggestion:
    request = SuggestRequest(space, METRICS, tuple(completed), tuple(in_flight), count, seed, state)
    out = algo.suggest(request)
    assert len(out.params) == count or out.exhausted
    assert len(out.params) <= count
    return out


def loss(params: Mapping[str, Any]) -> float:
    return sum(hash(str(v)) % 997 for v in params.values()) / 997.0


def finished(params: Sequence[Mapping[str, Any]], start: int = 0) -> list[Trial]:
    """Completed trials with values, plus a pruned and an infeasible one in the mix."""
    states = [TrialState.COMPLETED, TrialState.PRUNED, TrialState.COMPLETED, TrialState.INFEASIBLE]
    out = []
    for i, p in enumerate(params):
        state = states[i % len(states)]
        values = None if state == TrialState.INFEASIBLE else {"loss": loss(p)}
        out.append(Trial(number=start + i, state=state, params=dict(p), values=values))
    return out


def running(params: Sequence[Mapping[str, Any]], start: int = 0) -> list[Trial]:
    states = [TrialState.ACTIVE, TrialState.REQUESTED, TrialState.STOPPING, TrialState.PAUSED]
    return [
        Trial(number=start + i, state=states[i % len(states)], params=dict(p))
        for i, p in enumerate(params)
    ]


def session(name: str, seed: int, rounds: int = 4) -> list[Suggestion]:
    """Several calls feeding state forward; earlier points become completed history."""
    algo, space = make(name, MIXED)
    state: Mapping[str, Any] | None = None
    history: list[dict[str, Any]] = []
    out = []
    for _ in range(rounds):
        s = ask(algo, space, count=3, seed=seed, state=state, completed=finished(history))
        out.append(s)
        history.extend(s.params)
        state = s.state
    return out


def keys(space: SearchSpace, params: Sequence[Mapping[str, Any]]) -> list[Any]:
    return [space.key(p) for p in params]


def test_every_suggestion_is_valid_canonical_and_json(name: str) -> None:
    space = SearchSpace.from_list(MIXED)
    for s in session(name, seed=3):
        assert len(s.params) == 3
        for params in s.params:
            assert space.validate_params(params) == params
            assert json.loads(json.dumps(params, allow_nan=False)) == params
        json.dumps(s.state, allow_nan=False)


def test_same_inputs_give_the_same_suggestions(name: str) -> None:
    first, second = session(name, seed=11), session(name, seed=11)
    assert [s.params for s in first] == [s.params for s in second]
    assert [s.state for s in first] == [s.state for s in second]
    algo, space = make(name, MIXED)
    again = ask(algo, space, count=3, seed=11)  # a used instance keeps nothing in memory
    assert again.params == ask(make(name, MIXED)[0], space, count=3, seed=11).params
    assert again.params == first[0].params


def test_successive_calls_move_on(name: str) -> None:
    rounds = session(name, seed=5)
    space = SearchSpace.from_list(MIXED)
    all_keys = keys(space, [p for s in rounds for p in s.params])
    assert len(set(all_keys)) == len(all_keys)


def test_different_seeds_give_different_suggestions(name: str) -> None:
    algo, space = make(name, MIXED)
    runs = [ask(algo, space, count=8, seed=seed).params for seed in (0, 1, 2)]
    assert runs[0] != runs[1] and runs[1] != runs[2] and runs[0] != runs[2]


def test_a_batch_is_distinct(name: str) -> None:
    algo, space = make(name, MIXED)
    for seed in range(3):
        batch = ask(algo, space, count=8, seed=seed).params
        assert len(set(keys(space, batch))) == 8
    algo, space = make(name, SMALL)
    assert len(set(keys(space, ask(algo, space, count=6).params))) == 6  # the whole space


@pytest.mark.parametrize("seed", range(5))
def test_in_flight_points_are_avoided(name: str, seed: int) -> None:
    algo, space = make(name, SMALL)
    everything = list(space.iter_grid())
    for left in range(len(everything)):
        busy = everything[:left] + everything[left + 1 :]
        got = ask(algo, space, seed=seed, in_flight=running(busy)).params
        assert keys(space, got) == [space.key(everything[left])]


@pytest.mark.parametrize("seed", range(5))
def test_completed_and_in_flight_points_are_avoided_together(name: str, seed: int) -> None:
    algo, space = make(name, MEDIUM)
    points = list(space.iter_grid())
    assert len(points) == 24
    done, busy, free = points[:12], points[12:20], points[20:]
    got = ask(
        algo, space, count=4, seed=seed, completed=finished(done), in_flight=running(busy, start=12)
    ).params
    assert sorted(keys(space, got)) == sorted(keys(space, free))
    algo, space = make(name, CONDITIONAL)
    cp = list(space.iter_grid())
    got = ask(
        algo,
        space,
        count=1,
        seed=seed,
        completed=finished(cp[:1]),
        in_flight=running(cp[2:], start=1),
    ).params
    assert keys(space, got) == [space.key(cp[1])]


def test_a_used_up_space_still_answers(name: str) -> None:
    algo, space = make(name, SMALL)
    everything = list(space.iter_grid())
    out = ask(
        algo,
        space,
        count=3,
        completed=finished(everything[:3]),
        in_flight=running(everything[3:], start=3),
    )
    assert all(space.validate_params(p) == p for p in out.params)


def test_history_from_other_sources_is_accepted(name: str) -> None:
    algo, space = make(name, MIXED)
    user = [
        {"lr": 1e-3, "depth": 2, "batch": 32.0, "opt": "adam"},  # non-canonical 32.0
        {
            "lr": 0.05,
            "depth": 8,
            "batch": 64,
            "opt": "sgd",
            "momentum": 0.5,
            "nesterov": True,
            "decay": 0.75,
        },
    ]
    out = ask(
        algo, space, count=5, seed=4, completed=finished(user), in_flight=running(user[:1], start=2)
    )
    assert all(space.validate_params(p) == p for p in out.params)
    assert not set(keys(space, out.params)) & set(keys(space, user))


def test_state_survives_a_json_round_trip(name: str) -> None:
    algo, space = make(name, MIXED)
    history: list[dict[str, Any]] = []
    state: Mapping[str, Any] | None = None
    for _ in range(3):
        s = ask(algo, space, count=2, seed=9, state=state, completed=finished(history))
        history.extend(s.params)
        stored = json.loads(json.dumps(s.state, allow_nan=False))
        direct = ask(algo, space, count=2, seed=9, state=s.state, completed=finished(history))
        via_json = ask(algo, space, count=2, seed=9, state=stored, completed=finished(history))
        assert direct.params == via_json.params and direct.state == via_json.state
        state = stored


@pytest.mark.parametrize("seed", range(3))
def test_the_last_free_point_of_a_larger_space_is_found(name: str, seed: int) -> None:
    specs: list[dict[str, Any]] = [
        {"name": "u", "type": "int", "low": 0, "high": 19},
        {"name": "v", "type": "discrete", "values": list(range(20))},
    ]
    algo, space = make(name, specs)
    points = list(space.iter_grid())
    free = points[(seed * 157) % len(points)]
    taken = [p for p in points if p != free]
    got = ask(
        algo,
        space,
        seed=seed,
        completed=finished(taken[:200]),
        in_flight=running(taken[200:], start=200),
    ).params
    assert keys(space, got) == [space.key(free)]


# ---- the documented streams of random and sobol ----------------------------------------------
def test_random_draws_from_the_seed_and_draw_counter() -> None:
    algo, space = make("random", MIXED)
    first = ask(algo, space, count=2, seed=7)
    second = ask(algo, space, count=3, seed=7, state=first.state)
    assert first.state == {"draws": 2} and second.state == {"draws": 5}
    rng = np.random.default_rng([7, 2])
    assert list(second.params) == [space.sample(rng) for _ in range(3)]


def test_sobol_follows_the_scrambled_sequence_across_calls() -> None:
    algo, space = make("sobol", MIXED)
    state: Mapping[str, Any] | None = None
    got: list[dict[str, Any]] = []
    for count in (1, 2, 3):
        s = ask(algo, space, count=count, seed=3, state=state)
        got.extend(s.params)
        state = s.state
    assert state == {"next_index": 6}
    keyword = "rng" if "rng" in inspect.signature(qmc.Sobol).parameters else "seed"  # SciPy < 1.15
    engine = qmc.Sobol(len(space), scramble=True, **{keyword: np.random.default_rng(3)})
    assert got == [space.decode(u) for u in engine.random(8)[:6]]
