"""``ehvi`` on multi-objective histories (the contract suite covers one objective, where
it is ``gp``), and ``auto``'s choice for several objectives."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tuneforge.core.algorithms import SuggestRequest, create_algorithm, validate_algorithm
from tuneforge.core.algorithms.auto import choose
from tuneforge.core.analysis.hypervolume import study_hypervolume
from tuneforge.core.space import SearchSpace
from tuneforge.core.trials import Metric, MetricRole, Trial, TrialState

TWO = (
    Metric("f1", goal="minimize"),  # type: ignore[arg-type]
    Metric("f2", goal="minimize"),  # type: ignore[arg-type]
)
SPACE = SearchSpace.from_list(
    [{"name": f"x{i}", "type": "float", "low": 0.0, "high": 1.0} for i in range(4)]
)


def zdt1(p: dict[str, Any]) -> dict[str, float]:
    x = [float(p[f"x{i}"]) for i in range(4)]
    g = 1 + 9 * sum(x[1:]) / 3
    return {"f1": x[0], "f2": g * (1 - math.sqrt(x[0] / g))}


def make(name: str = "ehvi", space: SearchSpace = SPACE) -> Any:
    return create_algorithm(name, validate_algorithm(name, {}, space), space)


def run(name: str, n: int, seed: int = 0) -> list[Trial]:
    algo, history, state = make(name), [], None
    for i in range(n):
        s = algo.suggest(SuggestRequest(SPACE, TWO, tuple(history), (), 1, seed, state))
        state = s.state
        history.append(Trial(i, TrialState.COMPLETED, s.params[0], zdt1(s.params[0])))
    return history


def test_ehvi_beats_random_search_on_zdt1() -> None:
    reference = {"f1": 1.1, "f2": 11.0}
    volumes = {
        name: study_hypervolume(run(name, 25), TWO, reference).hypervolume
        for name in ("ehvi", "random")
    }
    assert volumes["ehvi"] > volumes["random"] + 0.5


def test_batches_are_reproducible_distinct_and_avoid_in_flight_points() -> None:
    history = tuple(run("random", 12))
    busy = tuple(
        Trial(100 + i, TrialState.ACTIVE, p)
        for i, p in enumerate(
            make("random").suggest(SuggestRequest(SPACE, TWO, (), (), 3, 9)).params
        )
    )
    request = SuggestRequest(SPACE, TWO, history, busy, 4, 5, None)
    first, again = make().suggest(request), make().suggest(request)
    assert first.params == again.params and first.extra["phase"] == "model"
    U = np.array([SPACE.encode(p) for p in first.params])
    used = np.array([SPACE.encode(t.params) for t in (*history, *busy)])
    assert np.min(np.linalg.norm(U[:, None] - U[None], axis=-1)[np.triu_indices(4, 1)]) > 0.02
    assert np.min(np.linalg.norm(U[:, None] - used[None], axis=-1)) > 0.02
    other = make().suggest(SuggestRequest(SPACE, TWO, history, busy, 4, 6, None))
    assert other.params != first.params


def test_outcome_constraints_and_infeasible_trials_steer_the_search() -> None:
    metrics = (*TWO, Metric("x0cap", goal="minimize", role=MetricRole.CONSTRAINT, threshold=0.5))  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    history = []
    for i in range(20):
        p = SPACE.sample(rng)
        if float(p["x1"]) > 0.8:
            history.append(Trial(i, TrialState.INFEASIBLE, p))
            continue
        history.append(Trial(i, TrialState.COMPLETED, p, {**zdt1(p), "x0cap": float(p["x0"])}))
    out = make().suggest(SuggestRequest(SPACE, metrics, tuple(history), (), 6, 0, None)).params
    assert sum(float(p["x0"]) <= 0.55 for p in out) >= 4
    assert sum(float(p["x1"]) > 0.8 for p in out) <= 1


def test_a_state_round_trip_keeps_the_fitted_models() -> None:
    history = tuple(run("random", 12))
    first = make().suggest(SuggestRequest(SPACE, TWO, history, (), 1, 0, None))
    assert set(first.state["theta"]) == {"objective:0", "objective:1"}  # type: ignore[index]
    second = make().suggest(SuggestRequest(SPACE, TWO, history, (), 1, 0, first.state))
    assert second.state["calls"] == 2  # type: ignore[index]


@pytest.mark.parametrize(
    ("metrics", "conditional", "n", "expected"),
    [
        (TWO, False, 0, "ehvi"),
        (TWO[:1], False, 0, "gp"),
        (TWO, True, 0, "tpe"),
        (TWO, False, 400, "tpe"),
    ],
)
def test_auto_picks_ehvi_for_several_objectives(
    metrics: tuple[Metric, ...], conditional: bool, n: int, expected: str
) -> None:
    specs: list[dict[str, Any]] = [{"name": "c", "type": "categorical", "values": ["a", "b"]}]
    specs.append({"name": "y", "type": "float", "low": 0, "high": 1})
    if conditional:
        specs[1]["condition"] = {"parent": "c", "values": ["a"]}
    space = SearchSpace.from_list(specs)
    done = tuple(Trial(i, TrialState.COMPLETED, {"c": "b", "y": 0.5}, {}) for i in range(n))
    assert choose(SuggestRequest(space, metrics, done, (), 1, 0)) == expected


def test_auto_suggests_exactly_what_ehvi_does() -> None:
    history = tuple(run("random", 12))
    request = SuggestRequest(SPACE, TWO, history, (), 2, 3, None)
    assert make("auto").suggest(request).params == make("ehvi").suggest(request).params
