"""The bohb rule: Hyperband's brackets, and the budget the algorithm is fitted on."""

from __future__ import annotations

from typing import Any

import pytest

from tuneforge.core.errors import InvalidSpec
from tuneforge.core.stopping import create_rule
from tuneforge.core.stopping.bohb import BOHBRule
from tuneforge.core.study import parse_study_spec
from tuneforge.core.trials import Goal, Measurement, Metric, Trial, TrialState

ACC = Metric("acc", Goal.MAXIMIZE)
FIDELITY = {"name": "epochs", "min": 1, "max": 9}  # budgets 1, 3 and 9


def rule() -> BOHBRule:
    made = create_rule({"rule": "bohb", "reduction_factor": 3}, FIDELITY)
    assert isinstance(made, BOHBRule)
    return made


def trial(number: int, curve: dict[int, float], state: TrialState = TrialState.PAUSED) -> Trial:
    ms = tuple(Measurement(step=s, values={"acc": v}) for s, v in sorted(curve.items()))
    return Trial(number=number, state=state, params={"x": number / 10}, measurements=ms)


def test_the_largest_budget_with_enough_observations_is_shown() -> None:
    trials = [trial(n, {1: 0.1 * n}) for n in range(6)]  # 6 at budget 1
    trials += [trial(n, {1: 0.5, 2: 0.55, 3: 0.6 + n / 100}) for n in range(6, 10)]  # 4 at 3
    budget, shown = rule().model_history(trials, ACC, n_params=2)  # enough: 2 + 2 = 4
    assert budget == 3
    assert [t.number for t in shown] == [6, 7, 8, 9]
    assert all(t.state == TrialState.COMPLETED for t in shown)
    assert [t.values for t in shown] == [{"acc": 0.6 + n / 100} for n in range(6, 10)]
    assert shown[0].params == {"x": 0.6}
    budget, shown = rule().model_history(trials, ACC, n_params=3)  # needs 5: only budget 1
    assert budget == 1 and len(shown) == 10
    assert shown[0].values == {"acc": 0.0} and shown[9].values == {"acc": 0.5}


def test_without_enough_anywhere_the_lowest_budget_is_used() -> None:
    trials = [trial(0, {1: 0.3}), trial(1, {1: 0.2, 3: 0.4}, TrialState.FAILED)]
    budget, shown = rule().model_history(trials, ACC, n_params=5)
    assert budget == 1 and [t.number for t in shown] == [0]  # failed trials left out
    assert rule().model_history([], ACC, n_params=1) == (1, ())


def test_full_budget_counts_as_a_budget() -> None:
    trials = [trial(n, {1: 0.1, 3: 0.2, 9: 0.5 + n / 10}, TrialState.COMPLETED) for n in range(3)]
    budget, shown = rule().model_history(trials, ACC, n_params=1)
    assert budget == 9 and [t.values for t in shown] == [{"acc": 0.5 + n / 10} for n in range(3)]


def base_spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "s",
        "parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "metrics": [{"name": "acc"}],
        "fidelity": FIDELITY,
        "early_stopping": {"rule": "bohb"},
    }
    spec.update(changes)
    return spec


def test_bohb_needs_one_objective_and_no_constraints() -> None:
    assert parse_study_spec(base_spec()).early_stopping == {
        "rule": "bohb",
        "reduction_factor": 3,
        "keep_leader": False,
    }
    two = [{"name": "acc"}, {"name": "loss", "goal": "minimize"}]
    constrained = [{"name": "acc"}, {"name": "mem", "role": "constraint", "threshold": 1}]
    for metrics in (two, constrained):
        with pytest.raises(InvalidSpec) as info:
            parse_study_spec(base_spec(metrics=metrics))
        assert info.value.field == "early_stopping.rule"
    with pytest.raises(InvalidSpec) as info:
        parse_study_spec(base_spec(fidelity=None))
    assert info.value.field == "fidelity"
    tracked = [{"name": "acc"}, {"name": "seconds", "role": "tracked"}]
    assert parse_study_spec(base_spec(metrics=tracked)).early_stopping["rule"] == "bohb"
