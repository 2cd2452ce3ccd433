"""The threshold rule (Optuna's ``ThresholdPruner``): stop a trial whose value leaves bounds.

A trial stops at a step when its value there is below ``lower`` or above
``upper`` (give one or both), or is not a finite number (NaN or infinity: the
run diverged). The value at the newest step is checked, not the best so far,
so a loss that blows up stops at once.

Options: ``lower`` (null), ``upper`` (null), ``n_warmup_steps`` (0: never stop
at a step below this), ``interval_steps`` (1: from the warm-up on, check every
this many steps).

The REST API refuses NaN and infinite measurements (422), so through the
server divergence shows as a value past a bound: give the bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ..decisions import CONTINUE, Prune, TrialDecision
from ..errors import InvalidSpec
from ..trials import Trial
from .base import RuleOptions, StoppingContext, StoppingRule, due_after, metric_series


class ThresholdOptions(RuleOptions):
    """Options of the ``threshold`` rule."""

    lower: float | None = Field(None, description="Stop when the value falls below this.")
    upper: float | None = Field(None, description="Stop when the value rises above this.")
    n_warmup_steps: int = Field(0, ge=0, description="Never stop at a step below this.")
    interval_steps: int = Field(
        1, ge=1, description="From the warm-up step on, check only every this many steps."
    )


class ThresholdRule(StoppingRule):
    """Stop a trial whose newest value is out of ``[lower, upper]`` or not finite."""

    name = "threshold"
    options_model = ThresholdOptions

    @classmethod
    def check_options(cls, options: ThresholdOptions, fidelity: Mapping[str, Any] | None) -> None:
        """At least one bound, and ``lower < upper`` when both are given."""
        del fidelity
        if options.lower is None and options.upper is None:
            raise InvalidSpec(
                "give lower, upper or both (without a bound the rule never stops a trial)",
                field="early_stopping.lower",
            )
        lower, upper = options.lower, options.upper
        if lower is not None and upper is not None and not lower < upper:
            raise InvalidSpec(
                f"must be greater than lower ({lower:g})", field="early_stopping.upper"
            )

    def next_decision_step(self, trial: Trial, step: int) -> int | None:
        """The next step past the warm-up on the interval (where :meth:`decide` checks)."""
        del trial
        warmup, interval = self.options["n_warmup_steps"], self.options["interval_steps"]
        return due_after(step, int(warmup), int(interval))

    def decide(self, ctx: StoppingContext) -> TrialDecision:
        """Stop when the value at the newest step is out of bounds or not finite."""
        series = metric_series(ctx.trial, ctx.metric.name)
        if not series:
            return CONTINUE
        step, value = series[-1]
        warmup = self.options["n_warmup_steps"]
        if step < warmup or (step - warmup) % self.options["interval_steps"]:
            return CONTINUE
        name = ctx.metric.name
        if not math.isfinite(value):
            return Prune(f"threshold rule: at step {step} {name} is {value} (diverged)")
        lower, upper = self.options["lower"], self.options["upper"]
        if lower is not None and value < lower:
            return Prune(f"threshold rule: at step {step} {name} {value:.6g} is below {lower:g}")
        if upper is not None and value > upper:
            return Prune(f"threshold rule: at step {step} {name} {value:.6g} is above {upper:g}")
        return CONTINUE
