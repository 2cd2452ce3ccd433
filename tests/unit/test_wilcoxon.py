"""The wilcoxon rule: fold scores recovered from running means, a paired one-sided test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from scipy import stats

from tuneforge.core.decisions import CONTINUE, Prune
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.stopping import (
    StoppingContext,
    TrialsPeerView,
    create_rule,
    validate_early_stopping,
)
from tuneforge.core.stopping.wilcoxon import fold_scores
from tuneforge.core.trials import Goal, Measurement, Metric, Trial, TrialState

ACC = Metric("acc", Goal.MAXIMIZE)
LOSS = Metric("loss", Goal.MINIMIZE)


def cv_trial(number: int, folds: Sequence[float], state: TrialState, name: str = "acc") -> Trial:
    """A trial that reported the running mean after each fold (step k = k folds done)."""
    means = np.cumsum(folds) / np.arange(1, len(folds) + 1)
    ms = tuple(Measurement(step=k + 1, values={name: float(m)}) for k, m in enumerate(means))
    values = {name: float(means[-1])} if state == TrialState.COMPLETED else None
    return Trial(number=number, state=state, params={}, values=values, measurements=ms)


def decide(me: Trial, others: Sequence[Trial], metric: Metric = ACC, **options: Any) -> Any:
    rule = create_rule(validate_early_stopping({"rule": "wilcoxon", **options}, None))
    view = TrialsPeerView([*others, me], metric.name, me.number, goal=metric.goal)
    ctx = StoppingContext(trial=me, metric=metric, peers=view, others=tuple(others))
    return rule.decide(ctx)


BEST = [0.90, 0.88, 0.92, 0.91, 0.89, 0.93]
GOOD = [0.80, 0.82, 0.81, 0.85, 0.84, 0.83]


def test_fold_scores_come_back_from_running_means() -> None:
    trial = cv_trial(0, [0.5, 0.7, 0.6], TrialState.ACTIVE)
    series = [(m.step, m.values["acc"]) for m in trial.measurements]
    assert fold_scores(series, "running_mean") == pytest.approx({1: 0.5, 2: 0.7, 3: 0.6})
    assert fold_scores([(1, 0.5), (3, 0.6)], "running_mean") == {1: 0.5}  # stops at a gap
    assert fold_scores([(1, 0.5), (3, 0.6)], "fold") == {1: 0.5, 3: 0.6}


def test_a_trial_worse_on_every_fold_stops_once_the_test_can_say_so() -> None:
    done = [cv_trial(0, BEST, TrialState.COMPLETED), cv_trial(1, GOOD, TrialState.COMPLETED)]
    worse = [b - 0.05 for b in BEST]
    assert decide(cv_trial(9, worse[:3], TrialState.ACTIVE), done) == CONTINUE  # < min_folds
    decision = decide(cv_trial(9, worse[:4], TrialState.ACTIVE), done)
    assert isinstance(decision, Prune)
    expected = stats.wilcoxon(worse[:4], BEST[:4], alternative="less").pvalue
    assert "trial 0's" in decision.reason and f"p = {expected:.3g}" in decision.reason


def test_a_trial_as_good_as_the_best_goes_on() -> None:
    done = [cv_trial(0, BEST, TrialState.COMPLETED)]
    mixed = [0.91, 0.87, 0.93, 0.90, 0.90, 0.92]  # some folds better, some worse
    assert decide(cv_trial(9, mixed, TrialState.ACTIVE), done) == CONTINUE
    assert decide(cv_trial(9, BEST, TrialState.ACTIVE), done) == CONTINUE  # identical: no test


def test_the_best_is_the_best_completed_trial_and_the_goal_counts() -> None:
    running = [cv_trial(5, [0.99] * 6, TrialState.ACTIVE)]  # not completed: not the reference
    worse = [g - 0.05 for g in GOOD]
    assert decide(cv_trial(9, worse, TrialState.ACTIVE), running) == CONTINUE
    losses = [cv_trial(0, [1 - b for b in BEST], TrialState.COMPLETED, "loss")]
    higher = [1 - b + 0.05 for b in BEST]
    assert isinstance(decide(cv_trial(9, higher, TrialState.ACTIVE, "loss"), losses, LOSS), Prune)
    lower = [1 - b - 0.05 for b in BEST]
    assert decide(cv_trial(9, lower, TrialState.ACTIVE, "loss"), losses, LOSS) == CONTINUE


def test_alpha_and_fold_reports() -> None:
    done = [cv_trial(0, BEST, TrialState.COMPLETED)]
    worse = cv_trial(9, [b - 0.05 for b in BEST[:4]], TrialState.ACTIVE)
    assert decide(worse, done, alpha=0.05) == CONTINUE  # 4 folds: p = 1/16 at best
    ms = tuple(Measurement(step=k + 1, values={"acc": b - 0.05}) for k, b in enumerate(BEST))
    per_fold = Trial(number=9, state=TrialState.ACTIVE, params={}, measurements=ms)
    assert isinstance(decide(per_fold, done, reported="fold"), Prune)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"alpha": 0}, "early_stopping.alpha"),
        ({"min_folds": 1}, "early_stopping.min_folds"),
        ({"reported": "mean"}, "early_stopping.reported"),
    ],
)
def test_options(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        validate_early_stopping({"rule": "wilcoxon", **options}, None)
    assert info.value.field == field
