"""Frozen value objects of studies and trials, and the two state machines.

The trial state machine lives in :func:`check_transition`, the study state
machine in :func:`check_study_transition`, and nowhere else: every change of a
trial's or a study's state in the service goes through them (the service's
lifecycle module is their only caller that writes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .errors import Conflict, InvalidSpec
from .space import ParamValue


class TrialState(StrEnum):
    REQUESTED = "requested"
    ACTIVE = "active"
    STOPPING = "stopping"
    PAUSED = "paused"
    COMPLETED = "completed"
    PRUNED = "pruned"
    INFEASIBLE = "infeasible"
    FAILED = "failed"

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_STATES

    @property
    def is_in_flight(self) -> bool:
        """Handed out (or queued) and not finished: the algorithm must avoid these points."""
        return self in IN_FLIGHT_STATES


FINISHED_STATES = frozenset(
    {TrialState.COMPLETED, TrialState.PRUNED, TrialState.INFEASIBLE, TrialState.FAILED}
)
IN_FLIGHT_STATES = frozenset(
    {TrialState.REQUESTED, TrialState.ACTIVE, TrialState.STOPPING, TrialState.PAUSED}
)
#: States that count towards ``max_trials`` (a failed trial is replaced, not counted).
BUDGET_STATES = frozenset(set(TrialState) - {TrialState.FAILED})

_TRANSITIONS: dict[TrialState, frozenset[TrialState]] = {
    TrialState.REQUESTED: frozenset(
        {TrialState.ACTIVE, TrialState.COMPLETED, TrialState.INFEASIBLE, TrialState.FAILED}
    ),
    TrialState.ACTIVE: frozenset(
        {
            TrialState.STOPPING,
            TrialState.PAUSED,
            TrialState.COMPLETED,
            TrialState.PRUNED,
            TrialState.INFEASIBLE,
            TrialState.FAILED,
        }
    ),
    TrialState.STOPPING: frozenset(
        {
            TrialState.PAUSED,
            TrialState.COMPLETED,
            TrialState.PRUNED,
            TrialState.INFEASIBLE,
            TrialState.FAILED,
        }
    ),
    TrialState.PAUSED: frozenset({TrialState.ACTIVE, TrialState.PRUNED, TrialState.FAILED}),
}


def check_transition(current: TrialState, target: TrialState, number: int | None = None) -> None:
    """Raise :class:`Conflict` unless a trial may go from ``current`` to ``target``."""
    if target in _TRANSITIONS.get(current, frozenset()):
        return
    who = f"trial {number}" if number is not None else "trial"
    details = {"trial_state": current.value}
    if current.is_finished:
        raise Conflict(
            f"{who} is already {current.value}; a finished trial cannot change", details=details
        )
    raise Conflict(f"{who} is {current.value} and cannot become {target.value}", details=details)


class StudyState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"


_STUDY_TRANSITIONS: dict[StudyState, frozenset[StudyState]] = {
    # paused by the user, or completed: budget spent, search exhausted, by the user
    StudyState.ACTIVE: frozenset({StudyState.PAUSED, StudyState.COMPLETED}),
    StudyState.PAUSED: frozenset({StudyState.ACTIVE, StudyState.COMPLETED}),
    # reopened by the user, or because a raised budget left room again
    StudyState.COMPLETED: frozenset({StudyState.ACTIVE}),
}


def check_study_transition(
    current: StudyState, target: StudyState, study_id: int | None = None
) -> None:
    """Raise :class:`Conflict` unless a study may go from ``current`` to ``target``."""
    if target in _STUDY_TRANSITIONS[current]:
        return
    who = f"study {study_id}" if study_id is not None else "study"
    allowed = ", ".join(sorted(s.value for s in _STUDY_TRANSITIONS[current]))
    raise Conflict(
        f"{who} is {current.value} and cannot become {target.value} (it can become: {allowed})",
        details={"study_state": current.value},
    )


class Goal(StrEnum):
    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


class MetricRole(StrEnum):
    OBJECTIVE = "objective"
    CONSTRAINT = "constraint"
    TRACKED = "tracked"


@dataclass(frozen=True)
class Metric:
    """A measured outcome: an objective, an outcome constraint or a tracked value."""

    name: str
    goal: Goal = Goal.MAXIMIZE
    role: MetricRole = MetricRole.OBJECTIVE
    threshold: float | None = None

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b`` for this metric."""
        return a > b if self.goal == Goal.MAXIMIZE else a < b

    def satisfied(self, value: float) -> bool:
        """For a constraint: whether ``value`` meets the threshold."""
        if self.threshold is None:
            return True
        return value >= self.threshold if self.goal == Goal.MAXIMIZE else value <= self.threshold


@dataclass(frozen=True)
class Measurement:
    step: int
    values: Mapping[str, float]
    elapsed_seconds: float | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Trial:
    """One evaluation of a parameter set, as the engine sees it."""

    number: int
    state: TrialState
    params: Mapping[str, ParamValue]
    values: Mapping[str, float] | None = None
    client_id: str | None = None
    retry_of: int | None = None
    attempt: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None
    lease_expires_at: datetime | None = None
    reason: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    measurements: tuple[Measurement, ...] = ()
    resume_from_step: int | None = None


def _finite(value: float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond float range
        return False


def check_metric_values(
    values: Any, metrics: tuple[Metric, ...], field_name: str = "values", *, require_all: bool
) -> dict[str, float]:
    """Validate reported metric values: known names, finite numbers, objectives present."""
    if not isinstance(values, Mapping):
        raise InvalidSpec("must be an object mapping metric names to numbers", field=field_name)
    known = {m.name: m for m in metrics}
    out: dict[str, float] = {}
    for name, value in values.items():
        where = f"{field_name}.{name}"
        if name not in known:
            raise InvalidSpec(
                f"unknown metric {name!r} (study metrics: {sorted(known)})", field=where
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidSpec(f"must be a number, got {value!r}", field=where)
        if not _finite(value):
            raise InvalidSpec(
                "must be a finite number (NaN and infinity are rejected)", field=where
            )
        out[name] = float(value)
    if require_all:
        for m in metrics:
            if m.role != MetricRole.TRACKED and m.name not in out:
                raise InvalidSpec(
                    f"missing value for metric {m.name!r}", field=f"{field_name}.{m.name}"
                )
    return out


#: Prefix of the client id a bundled worker uses for the task it runs.
TASK_CLIENT_PREFIX = "task:"


def task_client_id(task_id: str) -> str:
    """The ``client_id`` a worker suggests with while it runs task ``task_id``.

    A redelivered task keeps its id, so it gets its own unfinished trial back.
    """
    return f"{TASK_CLIENT_PREFIX}{task_id}"
