"""The rule that never stops a trial: every trial trains to its end."""

from __future__ import annotations

from .base import CONTINUE, StopDecision, StoppingContext, StoppingRule


class NoStopping(StoppingRule):
    """Never stops a trial (``{"rule": "none"}``, the default)."""

    name = "none"

    def decide(self, ctx: StoppingContext) -> StopDecision:
        """Always continue."""
        del ctx
        return CONTINUE
