"""The one vocabulary of decisions the engine speaks.

Algorithms and stopping rules decide; the service applies. A suggestion
algorithm answers with :class:`NewParams` (evaluate a new point) or
:class:`ResumeTrial` (hand an existing paused trial back, to train on from a
step). An early-stopping rule answers each measurement with :class:`Continue`,
:class:`Pause` (stop now, may be promoted later), :class:`Prune` (stop for
good) or :class:`WorkerAction` (keep training, but do something first: the
exploit/explore step of population-based training).

The values are frozen and carry no behaviour beyond describing themselves;
``api/services/lifecycle.py`` turns them into state changes through the
transition tables of :mod:`tuneforge.core.trials`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .space import ParamValue


@dataclass(frozen=True)
class NewParams:
    """Evaluate a new parameter set as a new trial."""

    params: Mapping[str, ParamValue]


@dataclass(frozen=True)
class ResumeTrial:
    """Hand paused trial ``number`` back to a worker, to train on from step ``from_step``."""

    number: int
    from_step: int
    reason: str | None = None


@dataclass(frozen=True)
class Continue:
    """Let the trial go on training."""

    @property
    def should_stop(self) -> bool:
        """Whether the worker is told to stop (never for this decision)."""
        return False


@dataclass(frozen=True)
class Pause:
    """Stop the trial now and keep it ``paused``: the rule may promote it later."""

    reason: str

    @property
    def should_stop(self) -> bool:
        """Whether the worker is told to stop (always for this decision)."""
        return True


@dataclass(frozen=True)
class Prune:
    """Stop the trial for good; once the worker reports its last values it is ``pruned``."""

    reason: str

    @property
    def should_stop(self) -> bool:
        """Whether the worker is told to stop (always for this decision)."""
        return True


@dataclass(frozen=True)
class WorkerAction:
    """Keep training after following an instruction, e.g. ``{"type": "exploit", ...}``.

    ``kind`` names the instruction; ``details`` holds its arguments (for the
    exploit step of population-based training: the trial to copy from and the
    new parameters). The worker receives :meth:`to_wire` as the measurement
    reply's ``action``.
    """

    kind: str
    details: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None

    @property
    def should_stop(self) -> bool:
        """Whether the worker is told to stop (never: it keeps training)."""
        return False

    def to_wire(self) -> dict[str, Any]:
        """The JSON object a worker receives: ``{"type": kind, **details}``."""
        return {"type": self.kind, **dict(self.details)}


#: What a suggestion algorithm may hand out.
SuggestDecision: TypeAlias = NewParams | ResumeTrial
#: What an early-stopping rule may answer to one measurement.
TrialDecision: TypeAlias = Continue | Pause | Prune | WorkerAction
#: Any decision of the engine.
Decision: TypeAlias = SuggestDecision | TrialDecision

#: The decision to let a trial go on training.
CONTINUE = Continue()
