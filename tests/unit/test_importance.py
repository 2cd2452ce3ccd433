"""Parameter importance (functional ANOVA of a random forest) on functions whose answer is known.

For independent uniform parameters the variance shares are exact: with
``f = 4 x0 + 6 x1 x2`` on ``[0, 1]^6``, ``Var(4 x0) = 16/12``, each of ``x1``
and ``x2`` has a main effect ``E[6 x1 x2 | x1] = 3 x1`` of variance ``9/12``,
and the pair's interaction is ``Var(6 x1 x2) - 2 * 9/12 = 1/4``: shares 0.43,
0.24, 0.24 and 0.08, dummies 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

from tuneforge.core.analysis.importance import (
    MIN_TRIALS,
    ImportanceResult,
    parameter_importance,
    pick_metric,
    study_importance,
)
from tuneforge.core.errors import Conflict, InvalidSpec
from tuneforge.core.space import SearchSpace
from tuneforge.core.trials import Goal, Metric, MetricRole, Trial, TrialState


def floats(n: int, low: float = 0.0, high: float = 1.0) -> list[dict[str, Any]]:
    return [{"name": f"x{i}", "type": "float", "low": low, "high": high} for i in range(n)]


def evaluate(
    space: SearchSpace, f: Callable[[Mapping[str, Any]], float], n: int, seed: int = 0
) -> ImportanceResult:
    rng = np.random.default_rng(seed)
    points = [space.sample(rng) for _ in range(n)]
    return parameter_importance(space, points, [f(p) for p in points], seed=seed)


def mains(result: ImportanceResult) -> dict[str, float]:
    return {p.name: p.importance for p in result.params}


def pairs(result: ImportanceResult) -> dict[tuple[str, str], float]:
    return {i.params: i.importance for i in result.interactions}


def test_linear_function_ranks_the_dominant_parameter_first_and_the_irrelevant_last() -> None:
    space = SearchSpace.from_list(floats(3))
    result = evaluate(space, lambda p: 10 * p["x0"] + p["x1"], 100)
    assert [p.name for p in result.params] == ["x0", "x1", "x2"]
    share = mains(result)
    assert share["x0"] > 0.9  # exactly 100 / 101 for the true function
    assert share["x2"] < 0.005
    assert sum(share.values()) + sum(pairs(result).values()) <= 1.0 + 1e-9


def test_pure_interaction_has_no_main_effects_and_one_strong_pair() -> None:
    space = SearchSpace.from_list(floats(4, -1.0, 1.0))
    result = evaluate(space, lambda p: p["x0"] * p["x1"], 200)
    assert result.interactions[0].params == ("x0", "x1")
    assert result.interactions[0].importance > 0.6  # exactly 1 for the true function
    assert max(mains(result).values()) < 0.1
    assert all(v < 0.02 for k, v in pairs(result).items() if k != ("x0", "x1"))


def test_dominant_parameter_interacting_pair_and_dummies() -> None:
    space = SearchSpace.from_list(floats(6))
    result = evaluate(space, lambda p: 4 * p["x0"] + 6 * p["x1"] * p["x2"], 200)
    share, inter = mains(result), pairs(result)
    assert result.params[0].name == "x0"
    assert {p.name for p in result.params[1:3]} == {"x1", "x2"}
    assert 0.35 < share["x0"] < 0.6  # 0.43
    assert all(share[d] < 0.01 for d in ("x3", "x4", "x5"))
    assert result.interactions[0].params == ("x1", "x2")
    assert inter[("x1", "x2")] > 0.03  # 0.08
    others = [v for k, v in inter.items() if k != ("x1", "x2")]
    assert max(others) < inter[("x1", "x2")] / 3


def test_categorical_parameter_is_one_hot_encoded_and_ranked() -> None:
    space = SearchSpace.from_list(
        [*floats(2), {"name": "kernel", "type": "categorical", "values": ["rbf", "poly", "lin"]}]
    )
    bonus = {"rbf": 0.0, "poly": 3.0, "lin": 0.0}
    result = evaluate(space, lambda p: bonus[p["kernel"]] + p["x0"], 120)
    assert [p.name for p in result.params] == ["kernel", "x0", "x1"]
    assert mains(result)["kernel"] > 0.8  # 2 / (2 + 1/12)


def test_conditional_parameter_counts_only_where_it_is_active() -> None:
    space = SearchSpace.from_list(
        [
            {"name": "optimizer", "type": "categorical", "values": ["adam", "sgd"]},
            {
                "name": "momentum",
                "type": "float",
                "low": 0.0,
                "high": 1.0,
                "condition": {"parent": "optimizer", "values": ["sgd"]},
            },
            {"name": "dummy", "type": "float", "low": 0.0, "high": 1.0},
        ]
    )

    def f(p: Mapping[str, Any]) -> float:
        return 4 * p["momentum"] if p["optimizer"] == "sgd" else 2.0

    result = evaluate(space, f, 150)
    share = mains(result)
    assert share["momentum"] > 0.2 and share["optimizer"] > 0.0
    assert share["dummy"] < 0.01


def test_same_trials_and_seed_give_the_same_result() -> None:
    space = SearchSpace.from_list(floats(4))
    first = evaluate(space, lambda p: p["x0"] + p["x1"] ** 2, 60, seed=3)
    again = evaluate(space, lambda p: p["x0"] + p["x1"] ** 2, 60, seed=3)
    assert first == again


def test_a_constant_objective_has_no_important_parameter() -> None:
    space = SearchSpace.from_list(floats(2))
    result = evaluate(space, lambda p: 1.5, 20)
    assert all(p.importance == 0.0 for p in result.params)
    assert all(i.importance == 0.0 for i in result.interactions)


def trial(number: int, x: float, value: float | None, state: TrialState) -> Trial:
    values = {"loss": value} if value is not None else None
    return Trial(number=number, state=state, params={"x0": x}, values=values)


def test_study_importance_uses_completed_trials_and_needs_enough_of_them() -> None:
    space = SearchSpace.from_list(floats(1))
    loss = Metric("loss", Goal.MINIMIZE)
    done = [trial(i, i / 10, i / 10, TrialState.COMPLETED) for i in range(MIN_TRIALS - 1)]
    others = [
        trial(10, 0.5, 0.3, TrialState.PRUNED),
        trial(11, 0.5, None, TrialState.FAILED),
        trial(12, 0.5, None, TrialState.ACTIVE),
    ]
    with pytest.raises(Conflict) as info:
        study_importance(space, [*done, *others], loss)
    assert info.value.details == {"n_trials": MIN_TRIALS - 1, "min_trials": MIN_TRIALS}
    result = study_importance(space, [*done, trial(20, 0.9, 0.9, TrialState.COMPLETED)], loss)
    assert result.n_trials == MIN_TRIALS and result.objective == "loss"


def test_pick_metric_defaults_to_the_first_objective_and_names_the_field() -> None:
    metrics = (
        Metric("latency", Goal.MINIMIZE, MetricRole.TRACKED),
        Metric("acc", Goal.MAXIMIZE),
    )
    assert pick_metric(metrics, None).name == "acc"
    assert pick_metric(metrics, "latency").name == "latency"
    with pytest.raises(InvalidSpec) as info:
        pick_metric(metrics, "f1")
    assert info.value.field == "objective"
