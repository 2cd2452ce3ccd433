"""The rule that never stops a trial: every trial trains to its end."""

from __future__ import annotations

from ..decisions import CONTINUE, TrialDecision
from .base import StoppingContext, StoppingRule


class NoStopping(StoppingRule):
    """Never stops a trial (``{"rule": "none"}``, the default)."""

    name = "none"
    decides = False

    def decide(self, ctx: StoppingContext) -> TrialDecision:
        """Always continue."""
        del ctx
        return CONTINUE
