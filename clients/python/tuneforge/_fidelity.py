"""A study's fidelity as a worker sees it: the steps left to train and the budgets
(rungs) worth stopping at. Pure: no I/O.

The rungs are the ones the server's ``asha``, ``hyperband`` and ``bohb`` rules
decide at (docs/early-stopping.md): ``min * reduction_factor**k`` below ``max``;
a measurement counts at a rung when its ``step`` is at or past it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .models import StudyData

#: The reduction factor of rules that have none (the server's default for asha and kin).
DEFAULT_REDUCTION_FACTOR = 3


@dataclass(frozen=True)
class Fidelity:
    """The resource a measurement's ``step`` counts, e.g. epochs from 1 to 27."""

    name: str
    min: float
    max: float
    reduction_factor: int = DEFAULT_REDUCTION_FACTOR

    @classmethod
    def of(cls, data: StudyData) -> Fidelity | None:
        """The fidelity of a study (``None`` when it declares none)."""
        raw = data.fidelity
        if not raw:
            return None
        factor = data.early_stopping.get("reduction_factor", DEFAULT_REDUCTION_FACTOR)
        if not isinstance(factor, int) or factor < 2:
            factor = DEFAULT_REDUCTION_FACTOR
        return cls(str(raw["name"]), float(raw["min"]), float(raw["max"]), factor)

    @property
    def last_step(self) -> int:
        """``max`` as a step number (steps are whole numbers)."""
        if not float(self.max).is_integer():
            raise ValueError(
                f"fidelity {self.name!r} ends at {self.max:g}, not a whole number: a "
                "measurement's step counts whole units (declare e.g. rows, not a fraction)"
            )
        return int(self.max)

    def rungs(self) -> list[float]:
        """``min * reduction_factor**k`` below ``max`` (the asha rule's rungs)."""
        out: list[float] = []
        resource = float(self.min)
        if resource <= 0:
            return out
        while resource < self.max:
            out.append(resource)
            resource *= self.reduction_factor
        return out

    def budgets(self) -> list[int]:
        """The steps to train to and report at: each rung (rounded up), then ``max``."""
        last = self.last_step
        steps = {min(math.ceil(r), last) for r in self.rungs()}
        return sorted(steps | {last})


def steps_left(
    fidelity: Fidelity | None, resume_from_step: int | None, stop: int | None, start: int | None
) -> range:
    """The steps a trial still trains: ``start`` (after ``resume_from_step``) to ``stop``."""
    if stop is None:
        if fidelity is None:
            raise ValueError("the study declares no fidelity: give the last step, steps(stop)")
        stop = fidelity.last_step
    if start is None:
        start = (resume_from_step or 0) + 1
    return range(start, stop + 1)


def budgets_left(fidelity: Fidelity | None, resume_from_step: int | None) -> list[int]:
    """The budgets a trial still trains to: those past ``resume_from_step``."""
    if fidelity is None:
        raise ValueError(
            "the study declares no fidelity: budgets() needs one, e.g. "
            '{"name": "epochs", "min": 1, "max": 27}'
        )
    done = resume_from_step or 0
    return [b for b in fidelity.budgets() if b > done]
