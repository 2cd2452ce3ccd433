"""The patience rule: stop a trial that stopped improving.

A trial stops when its best value over its last ``patience`` measurements is
not better than its best value before them by more than ``min_delta``. Only
the trial's own curve counts, so the rule needs no peers and works from the
first trial on.

Options: ``patience`` (3, measurements without improvement), ``min_delta``
(0: the smallest change that counts as an improvement), ``n_warmup_steps``
(0: never stop at a step below this).
"""

from __future__ import annotations

from pydantic import Field

from ..decisions import CONTINUE, Prune, TrialDecision
from ..trials import Goal, Trial
from .base import RuleOptions, StoppingContext, StoppingRule, best_of, metric_series


class PatienceOptions(RuleOptions):
    """Options of the ``patience`` rule."""

    patience: int = Field(3, ge=1, description="Measurements without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change counted as improvement.")
    n_warmup_steps: int = Field(0, ge=0, description="Never stop at a step below this.")


class PatienceRule(StoppingRule):
    """Stop a trial whose last ``patience`` measurements did not improve on its best before."""

    name = "patience"
    options_model = PatienceOptions

    def next_decision_step(self, trial: Trial, step: int) -> int | None:
        """The next step, once past the warm-up."""
        del trial
        return max(step + 1, int(self.options["n_warmup_steps"]))

    def decide(self, ctx: StoppingContext) -> TrialDecision:
        """Stop when the recent window is no better than the best before it (by ``min_delta``)."""
        series = metric_series(ctx.trial, ctx.metric.name)
        patience = int(self.options["patience"])
        if len(series) <= patience or series[-1][0] < self.options["n_warmup_steps"]:
            return CONTINUE
        goal = ctx.metric.goal
        before = best_of([v for _, v in series[:-patience]], goal)
        recent = best_of([v for _, v in series[-patience:]], goal)
        delta = float(self.options["min_delta"])
        gain = recent - before if goal == Goal.MAXIMIZE else before - recent
        if gain > delta:
            return CONTINUE
        return Prune(
            f"patience rule: {ctx.metric.name} did not improve on {before:.6g} by more than "
            f"{delta:g} in the last {patience} measurements (to step {series[-1][0]})"
        )
