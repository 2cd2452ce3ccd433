"""What the study's algorithm learns from under the pausing rules (``algorithm_view``).

ASHA and Hyperband: finished trials as they are, paused trials as if pruned where they
stopped, only trials holding a worker in flight. BOHB: one budget's trials, a budget
with at least as many as the algorithm needs before it models (its start-up).
"""

from __future__ import annotations

from typing import Any

import pytest

from tuneforge.api.services.promotions import model_startup
from tuneforge.core.stopping import create_rule
from tuneforge.core.study import parse_study_spec
from tuneforge.core.trials import Goal, Measurement, Metric, Trial, TrialState

ACC = Metric("acc", Goal.MAXIMIZE)
FIDELITY = {"name": "epochs", "min": 1, "max": 9}  # budgets 1, 3 and 9


def trial(number: int, curve: dict[int, float], state: TrialState) -> Trial:
    ms = tuple(Measurement(step=s, values={"acc": v}) for s, v in sorted(curve.items()))
    return Trial(number=number, state=state, params={"x": number / 10}, measurements=ms)


TRIALS = [
    trial(0, {1: 0.2, 3: 0.3, 9: 0.5}, TrialState.COMPLETED),
    trial(1, {1: 0.1}, TrialState.PAUSED),
    trial(2, {1: 0.4, 2: 0.45}, TrialState.ACTIVE),
    trial(3, {1: 0.3, 3: 0.35}, TrialState.PAUSED),
    trial(4, {}, TrialState.REQUESTED),
    trial(5, {1: 0.05}, TrialState.PRUNED),
    trial(6, {1: 0.3}, TrialState.STOPPING),
]


@pytest.mark.parametrize("name", ["asha", "hyperband"])
def test_paused_trials_are_results_and_only_running_ones_are_in_flight(name: str) -> None:
    rule = create_rule({"rule": name}, FIDELITY)
    view = rule.algorithm_view(TRIALS, ACC, n_params=1)
    assert view is not None
    history, in_flight = view
    assert [(t.number, t.state) for t in history] == [
        (0, TrialState.COMPLETED),
        (1, TrialState.PRUNED),
        (3, TrialState.PRUNED),
        (5, TrialState.PRUNED),
    ]
    assert history[2].measurements == TRIALS[3].measurements  # the step it reached, its value
    assert [t.number for t in in_flight] == [2, 4, 6]


def test_bohb_shows_one_budget_and_keeps_only_running_trials_in_flight() -> None:
    rule = create_rule({"rule": "bohb"}, FIDELITY)
    history, in_flight = rule.algorithm_view(TRIALS, ACC, n_params=0)
    # budget 3 has 2 = 0 + 2 trials (0 and 3); the shown ones are finished at their value there
    assert [(t.number, t.values) for t in history] == [(0, {"acc": 0.3}), (3, {"acc": 0.35})]
    assert [t.number for t in in_flight] == [2, 4, 6]


def test_bohb_needs_the_algorithms_start_up_at_a_budget() -> None:
    rule = create_rule({"rule": "bohb"}, FIDELITY)
    assert rule.model_history(TRIALS, ACC, n_params=0)[0] == 3
    budget, shown = rule.model_history(TRIALS, ACC, n_params=0, min_observations=3)
    assert budget == 1 and [t.number for t in shown] == [0, 1, 2, 3, 5, 6]


def test_rules_that_neither_pause_nor_feed_leave_the_view_alone() -> None:
    assert create_rule({"rule": "median"}).algorithm_view(TRIALS, ACC, n_params=1) is None


def spec(algorithm: str, **options: Any) -> Any:
    return parse_study_spec(
        {
            "name": "s",
            "parameters": [
                {"name": f"x{i}", "type": "float", "low": 0, "high": 1} for i in range(4)
            ],
            "metrics": [{"name": "acc"}],
            "algorithm": algorithm,
            "algorithm_options": options,
        }
    )


def test_model_startup_follows_the_algorithm() -> None:
    assert model_startup(spec("tpe")) == 10
    assert model_startup(spec("tpe", n_startup_trials=3)) == 3
    assert model_startup(spec("gp")) == 8  # 2d for 4 parameters
    assert model_startup(spec("gp", n_startup=6)) == 6
    assert model_startup(spec("auto")) == 8  # auto's delegate here is gp
    assert model_startup(spec("random")) == 0
