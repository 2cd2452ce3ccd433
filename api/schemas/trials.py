"""Wire models of trials, measurements and the worker verbs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...core.trials import Trial
from ..services.suggest import MAX_SUGGEST_COUNT
from ..services.trials import MAX_EARLIER, MAX_STEP
from .common import JsonInt, WireModel, declared
from .enums import StudyStateField, TrialStateField


class MeasurementPublic(BaseModel):
    """One intermediate report of a trial."""

    step: int
    values: dict[str, float]
    elapsed_seconds: float | None


class TrialPublic(BaseModel):
    """A trial: its parameters, state, final values and measurements."""

    model_config = ConfigDict(use_enum_values=True)

    number: int
    state: TrialStateField
    params: dict[str, Any]
    values: dict[str, float] | None
    client_id: str | None
    retry_of: int | None
    created_at: datetime | None
    updated_at: datetime | None = None
    started_at: datetime | None
    completed_at: datetime | None
    lease_expires_at: datetime | None
    reason: str | None
    metadata: dict[str, Any]
    measurements: list[MeasurementPublic]
    resume_from_step: int | None = None


def trial_public(trial: Trial) -> TrialPublic:
    return TrialPublic(
        number=trial.number,
        state=trial.state,
        params=dict(trial.params),
        values=dict(trial.values) if trial.values is not None else None,
        client_id=trial.client_id,
        retry_of=trial.retry_of,
        created_at=trial.created_at,
        updated_at=trial.updated_at,
        started_at=trial.started_at,
        completed_at=trial.completed_at,
        lease_expires_at=trial.lease_expires_at,
        reason=trial.reason,
        metadata=dict(trial.metadata),
        measurements=[
            MeasurementPublic(step=m.step, values=dict(m.values), elapsed_seconds=m.elapsed_seconds)
            for m in trial.measurements
        ],
        resume_from_step=trial.resume_from_step,
    )


class SuggestIn(WireModel):
    """Ask for up to ``count`` trials; the same ``client_id`` gets its unfinished trials back."""

    count: JsonInt = declared(
        1,
        minimum=1,
        maximum=MAX_SUGGEST_COUNT,
        description="1 to 1000; a study may hand out fewer per call (its cost cap)",
    )
    client_id: str | None = Field(default=None, max_length=256)


class SuggestOut(BaseModel):
    """Trials to run; an empty list with ``study_state`` when there is no work now."""

    model_config = ConfigDict(use_enum_values=True)

    trials: list[TrialPublic]
    study_state: StudyStateField


class TrialCreate(WireModel):
    """Queue a parameter set (``requested``) or record one evaluated elsewhere (``completed``)."""

    params: dict[str, Any]
    state: Literal["requested", "completed"] = "requested"
    values: dict[str, Any] | None = Field(default=None, description="required when completed")
    metadata: dict[str, Any] | None = None


class TrialPage(BaseModel):
    """One page of trials; pass ``next_page_token`` back until it is null."""

    trials: list[TrialPublic]
    next_page_token: str | None


class EarlierMeasurementIn(WireModel):
    """A measurement a worker held back, sent with a later report's ``earlier``."""

    step: JsonInt = declared(minimum=0, maximum=MAX_STEP)
    values: dict[str, Any] = Field(description="metric name -> finite number")
    elapsed_seconds: float | None = declared(None, minimum=0, exclusiveMaximum=1e12)


class MeasurementIn(WireModel):
    """An intermediate result at ``step``; repeating a step is a no-op."""

    step: JsonInt = declared(minimum=0, maximum=MAX_STEP)
    values: dict[str, Any] = Field(description="metric name -> finite number")
    elapsed_seconds: float | None = declared(None, minimum=0, exclusiveMaximum=1e12)
    earlier: list[EarlierMeasurementIn] | None = declared(
        None,
        maxItems=MAX_EARLIER,
        description="Measurements held back since the last report (steps strictly "
        "increasing, all below step), stored in the same transaction; steps stored before "
        "are skipped. The stopping rule is consulted once, on step: send here only steps "
        "below the last reply's next_decision_step. A report whose step was stored before "
        "is a repeat: nothing of it is stored.",
    )


class MeasureOut(BaseModel):
    """The early-stopping decision after a measurement."""

    model_config = ConfigDict(use_enum_values=True)

    should_stop: bool
    trial_state: TrialStateField
    action: dict[str, Any] | None = Field(
        None,
        description="An instruction for the worker, already recorded on the trial: under the "
        'pbt rule {"type": "exploit", "from_trial": 7, "params": {...}, "step": 8} (load '
        "trial 7's checkpoint, train on with params); null otherwise.",
    )
    next_decision_step: int | None = Field(
        None,
        description="The smallest step greater than the reported one at which the study's "
        "stopping rule could decide anything but continue for this trial (asha, hyperband, "
        "bohb: its next rung; pbt: the next interval boundary; median, percentile, "
        "threshold: the next step past the warm-up on the interval; patience, wilcoxon: the "
        "next step). A worker may hold back its reports of steps below it and send them as "
        "earlier with the first report at or past it. null: the rule decides nothing for "
        "this trial at any later step (rule none, past the last rung) or the trial is no "
        "longer active. The trial's state can still change meanwhile (a stop request, a "
        "lease): a worker that holds reports back should still send one every few seconds.",
    )


class HeartbeatOut(BaseModel):
    """Whether the trial should stop, and its state."""

    model_config = ConfigDict(use_enum_values=True)

    should_stop: bool
    trial_state: TrialStateField


class CompleteIn(WireModel):
    """Final values (every objective metric), or ``infeasible`` with a reason."""

    values: dict[str, Any] | None = Field(
        default=None, description="metric name -> finite number; required unless infeasible"
    )
    infeasible: bool = False
    reason: str | None = None
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="merged into the trial's metadata (the bundled workers record how the "
        "trial ran: seed, package versions, host, dataset fingerprint, per-fold scores)",
    )


class FailIn(WireModel):
    """An infrastructure failure; ``retry`` queues a copy while the retry budget lasts."""

    reason: str | None = None
    retry: bool = True


class BestOut(BaseModel):
    """The best trial (one objective) or the Pareto front (several)."""

    trials: list[TrialPublic]
