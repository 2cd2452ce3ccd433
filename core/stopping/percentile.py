"""The percentile stopping rule (Optuna's ``PercentilePruner``): the median rule with
any cut-off.

``percentile`` p (25 by default) keeps a trial while it is in the best p percent
of its peers at the same step: it stops when its value (or best value so far)
is strictly worse than the peers' ``100 - p``-th percentile for a maximized
metric, their p-th percentile for a minimized one. ``percentile: 50`` is the
median rule. The other options are the median rule's.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..trials import Goal
from .base import StoppingContext
from .median import MedianOptions, MedianRule


class PercentileOptions(MedianOptions):
    """Options of the ``percentile`` rule: the median rule's plus ``percentile``."""

    percentile: float = Field(
        25.0, gt=0, lt=100, description="Keep trials in the best this percent of their peers."
    )


class PercentileRule(MedianRule):
    """Stop a trial that is not in the best ``percentile`` percent of its peers at a step."""

    name = "percentile"
    options_model = PercentileOptions

    def _cutoff(self, values: list[float], ctx: StoppingContext) -> tuple[float, str]:
        """The peers' value at the cut-off: the edge of their best ``percentile`` percent."""
        p = float(self.options["percentile"])
        q = 100.0 - p if ctx.metric.goal == Goal.MAXIMIZE else p
        return float(np.percentile(values, q)), f"the best-{p:g}% cut-off"
