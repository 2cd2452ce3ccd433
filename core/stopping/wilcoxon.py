"""The Wilcoxon rule for cross-validation: a paired test against the best trial's folds.

Each step is one fold (step ``k`` = ``k`` folds done). Both trials were scored
on the same folds (a study's folds are fixed by its ``cv`` seed), so after
each fold the rule compares the trial's fold scores with those of the best
completed trial, fold by fold, with the one-sided Wilcoxon signed-rank test,
and stops the trial when it is worse with p below ``alpha``.

tuneforge's workers report the running mean of the folds done so far (the
managed scikit-learn objective, ``TuneSearchCV``); the rule recovers each
fold's score from it: ``score_k = k * mean_k - (k - 1) * mean_(k-1)``. A
worker that reports each fold's own score sets ``reported: "fold"``.

Options: ``alpha`` (0.1), ``min_folds`` (4: no test on fewer paired folds;
with 4 folds the smallest one-sided p is 1/16), ``reported``
(``"running_mean"`` or ``"fold"``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

from pydantic import Field
from scipy import stats

from ..decisions import CONTINUE, Prune, TrialDecision
from ..trials import Goal, Metric, Trial, TrialState
from .base import RuleOptions, StoppingContext, StoppingRule, metric_series


class WilcoxonOptions(RuleOptions):
    """Options of the ``wilcoxon`` rule."""

    alpha: float = Field(0.1, gt=0, lt=1, description="Stop when worse with p below this.")
    min_folds: int = Field(4, ge=2, le=1000, description="No test on fewer paired folds.")
    reported: Literal["running_mean", "fold"] = Field(
        "running_mean", description="What a step's value is: the running mean, or the fold score."
    )


def fold_scores(series: Sequence[tuple[int, float]], reported: str) -> dict[int, float]:
    """Fold ``k`` -> its score, from ``(step, value)`` pairs with step ``k`` = folds done.

    Running means need every fold from 1 on; the scores stop at the first gap.
    """
    values = dict(series)
    if reported == "fold":
        return {k: v for k, v in values.items() if k >= 1}
    out: dict[int, float] = {}
    previous = 0.0
    k = 1
    while k in values:
        out[k] = k * values[k] - (k - 1) * previous
        previous = values[k]
        k += 1
    return out


class WilcoxonRule(StoppingRule):
    """Stop a trial whose fold scores are significantly worse than the best trial's."""

    name = "wilcoxon"
    options_model = WilcoxonOptions
    sees_trials = True

    def decide(self, ctx: StoppingContext) -> TrialDecision:
        """Test the trial's folds so far against the same folds of the best completed trial."""
        reported = self.options["reported"]
        mine = fold_scores(metric_series(ctx.trial, ctx.metric.name), reported)
        best = _best_completed(ctx.others, ctx.metric)
        if best is None or not mine:
            return CONTINUE
        theirs = fold_scores(metric_series(best, ctx.metric.name), reported)
        folds = sorted(set(mine) & set(theirs))
        if len(folds) < self.options["min_folds"]:
            return CONTINUE
        p = _p_worse([mine[k] for k in folds], [theirs[k] for k in folds], ctx.metric.goal)
        if p is None or p >= self.options["alpha"]:
            return CONTINUE
        return Prune(
            f"wilcoxon rule: on {len(folds)} folds {ctx.metric.name} is worse than trial "
            f"{best.number}'s (one-sided signed-rank p = {p:.3g} < {self.options['alpha']:g})"
        )


def _best_completed(trials: Sequence[Trial], metric: Metric) -> Trial | None:
    """The completed trial with the best final value of ``metric``."""
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETED and t.values and metric.name in t.values
    ]
    if not done:
        return None
    sign = 1.0 if metric.goal == Goal.MAXIMIZE else -1.0
    return max(done, key=lambda t: (sign * float(t.values[metric.name]), -t.number))  # type: ignore[index]


def _p_worse(mine: list[float], theirs: list[float], goal: Goal) -> float | None:
    """One-sided p-value that ``mine`` is worse than ``theirs`` (``None`` if all pairs tie)."""
    if all(
        math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12) for a, b in zip(mine, theirs, strict=True)
    ):
        return None
    alternative = "less" if goal == Goal.MAXIMIZE else "greater"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.wilcoxon(mine, theirs, alternative=alternative)
    p = float(result.pvalue)
    return p if math.isfinite(p) else None
