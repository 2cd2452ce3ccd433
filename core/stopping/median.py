"""The median stopping rule (Google Vizier; Optuna's ``MedianPruner``).

A trial stops at step ``s`` when its value is strictly worse than the median of
the other trials at the same step. With ``use_best_so_far`` (the default) the
trial's best value over its steps ``<= s`` is compared with the median of the
other trials' best values over their steps ``<= s``, which forgives a noisy
step; otherwise the values at exactly ``s`` are compared.

Options:

- ``n_startup_trials`` (5): no stopping until this many other trials completed.
- ``n_warmup_steps`` (0): never stop at a step below this.
- ``interval_steps`` (1): from the warm-up step on, decide only every this many steps.
- ``min_peers`` (3): no stopping at a step fewer other trials have reached.
- ``use_best_so_far`` (true): compare best-so-far values rather than values at the step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from ..decisions import CONTINUE, Prune, TrialDecision
from ..errors import InvalidSpec
from ..options import OptionsModel
from ..trials import Measurement, Trial
from .base import (
    RuleOptions,
    StoppingContext,
    StoppingRule,
    best_of,
    due_after,
    fidelity_max,
    metric_series,
)


class MedianOptions(RuleOptions):
    """Options of the ``median`` rule (see the module docstring)."""

    n_startup_trials: int = Field(
        5, ge=0, description="No stopping until this many other trials completed."
    )
    n_warmup_steps: int = Field(0, ge=0, description="Never stop at a step below this.")
    interval_steps: int = Field(
        1, ge=1, description="From the warm-up step on, decide only every this many steps."
    )
    min_peers: int = Field(
        3, ge=1, description="No stopping at a step fewer other trials have reached."
    )
    use_best_so_far: bool = Field(
        True, description="Compare best-so-far values rather than values at the step."
    )


class MedianRule(StoppingRule):
    """Stop a trial whose value is worse than the median of its peers at the same step."""

    name = "median"
    options_model: ClassVar[type[OptionsModel]] = MedianOptions

    @classmethod
    def check_options(cls, options: MedianOptions, fidelity: Mapping[str, Any] | None) -> None:
        """The warm-up must end within the fidelity, or the rule could never stop a trial."""
        top = fidelity_max(fidelity)
        if top is not None and options.n_warmup_steps > top:
            raise InvalidSpec(
                f"must not exceed fidelity.max ({top:g}), or the rule could never stop a trial",
                field="early_stopping.n_warmup_steps",
            )

    def decide(self, ctx: StoppingContext) -> TrialDecision:
        """Stop when the trial is strictly worse than the peers' median at its newest step."""
        newest = _newest(ctx.trial.measurements)
        if newest is None or ctx.metric.name not in newest.values:
            return CONTINUE
        step = newest.step
        if not self._due(step) or ctx.peers.n_completed() < self.options["n_startup_trials"]:
            return CONTINUE
        own, peer_values = self._compare(ctx, step)
        finite = [v for v in peer_values if math.isfinite(v)]
        if len(finite) < self.options["min_peers"]:
            return CONTINUE
        cutoff, label = self._cutoff(finite, ctx)
        if not ctx.metric.better(cutoff, own):
            return CONTINUE
        what = "best value so far" if self.options["use_best_so_far"] else "value"
        return Prune(
            f"{self.name} rule: at step {step} the {what} of {ctx.metric.name} ({own:.6g}) is "
            f"worse than {label} {cutoff:.6g} of {len(finite)} other trials"
        )

    def _cutoff(self, values: list[float], ctx: StoppingContext) -> tuple[float, str]:
        """The value a trial must not be worse than, and its name in the reason."""
        del ctx
        return float(np.median(values)), "the median"

    def next_decision_step(self, trial: Trial, step: int) -> int | None:
        """The next step past the warm-up on the interval (where :meth:`decide` compares)."""
        del trial
        warmup, interval = self.options["n_warmup_steps"], self.options["interval_steps"]
        return due_after(step, int(warmup), int(interval))

    def _due(self, step: int) -> bool:
        """Whether the rule decides at ``step`` (past warm-up, on the interval)."""
        warmup = self.options["n_warmup_steps"]
        return step >= warmup and (step - warmup) % self.options["interval_steps"] == 0

    def _compare(self, ctx: StoppingContext, step: int) -> tuple[float, list[float]]:
        """This trial's value at ``step`` and the peers' values to take the median of."""
        series = metric_series(ctx.trial, ctx.metric.name)
        if self.options["use_best_so_far"]:
            own = best_of([v for s, v in series if s <= step], ctx.metric.goal)
            return own, ctx.peers.best_until(step)
        own = [v for s, v in series if s == step][-1]
        return own, ctx.peers.values_at(step)


def _newest(measurements: tuple[Measurement, ...]) -> Measurement | None:
    """The measurement with the largest step (the last one sent if several share it)."""
    if not measurements:
        return None
    top = max(m.step for m in measurements)
    return [m for m in measurements if m.step == top][-1]
