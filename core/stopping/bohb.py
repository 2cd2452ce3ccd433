"""BOHB: Hyperband's brackets, with the study's algorithm fitted per budget.

The brackets, pauses and promotions are :mod:`.hyperband`'s. What changes is
what the study's algorithm (TPE or GP, or any other) learns from when suggest
asks it for new points: as in the BOHB paper (Falkner et al., ICML 2018), the
largest budget with enough observations, where a budget is a rung or
``fidelity.max`` and "enough" is ``d + 2`` trials that reached it (``d`` =
the number of parameters) or, when the algorithm needs more before it models
anything (TPE's ``n_startup_trials``, GP's ``n_startup``), that many. Each
trial that reached that budget is shown to the algorithm as a finished trial
whose value is its value there, so the model compares configurations trained
equally long; only the trials that hold a worker are in flight (a trial paused
or pruned below the budget is not a bad point for the model). Until some budget
has enough observations, the lowest budget's are used.

The algorithm sees one objective, so ``bohb`` needs a study with a single
objective and no outcome constraints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..trials import Metric, Trial, TrialState
from .asha import value_at_rung
from .base import RUNNING, metric_series
from .hyperband import HyperbandRule


class BOHBRule(HyperbandRule):
    """Hyperband whose new points come from a model of the largest well-observed budget."""

    name = "bohb"
    feeds_algorithm = True

    def budgets(self) -> list[float]:
        """The budgets a model may be fitted on: every rung, then ``fidelity.max``."""
        assert self.fidelity is not None
        return [*self.rungs(), float(self.fidelity["max"])]

    def model_history(
        self,
        trials: Sequence[Trial],
        metric: Metric,
        n_params: int,
        min_observations: int = 0,
    ) -> tuple[float, tuple[Trial, ...]]:
        """The budget the model learns from, and the trials that reached it, each finished
        with its value there (failed trials left out). A budget needs ``n_params + 2``
        trials, and at least ``min_observations``."""
        per_budget: list[tuple[float, list[tuple[Trial, float]]]] = []
        for budget in self.budgets():
            seen = []
            for trial in trials:
                if trial.state == TrialState.FAILED:
                    continue
                value = value_at_rung(metric_series(trial, metric.name), budget)
                if value is not None:
                    seen.append((trial, value))
            per_budget.append((budget, seen))
        need = max(n_params + 2, min_observations)
        enough = [(b, seen) for b, seen in per_budget if len(seen) >= need]
        budget, seen = enough[-1] if enough else per_budget[0]
        shown = tuple(
            dataclasses.replace(t, state=TrialState.COMPLETED, values={metric.name: v})
            for t, v in sorted(seen, key=lambda pair: pair[0].number)
        )
        return budget, shown

    def algorithm_view(
        self,
        trials: Sequence[Trial],
        metric: Metric,
        n_params: int,
        min_observations: int = 0,
    ) -> tuple[tuple[Trial, ...], tuple[Trial, ...]]:
        """The trials of :meth:`model_history`; in flight: the other trials holding a worker."""
        _budget, shown = self.model_history(trials, metric, n_params, min_observations)
        numbers = {t.number for t in shown}
        return shown, tuple(t for t in trials if t.state in RUNNING and t.number not in numbers)
