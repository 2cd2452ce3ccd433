"""Wire models of trials, measurements and the worker verbs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ...core.trials import Trial
from .common import WireModel


class MeasurementPublic(BaseModel):
    step: int
    values: dict[str, float]
    elapsed_seconds: float | None


class TrialPublic(BaseModel):
    number: int
    state: str
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
        state=trial.state.value,
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
    count: int = 1
    client_id: str | None = Field(default=None, max_length=256)


class SuggestOut(BaseModel):
    trials: list[TrialPublic]
    study_state: str


class TrialCreate(WireModel):
    params: dict[str, Any]
    state: str = "requested"
    values: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class TrialPage(BaseModel):
    trials: list[TrialPublic]
    next_page_token: str | None


class MeasurementIn(WireModel):
    step: int
    values: dict[str, Any]
    elapsed_seconds: float | None = None


class MeasureOut(BaseModel):
    should_stop: bool
    trial_state: str
    action: dict[str, Any] | None = None


class HeartbeatOut(BaseModel):
    should_stop: bool
    trial_state: str


class CompleteIn(WireModel):
    values: dict[str, Any] | None = None
    infeasible: bool = False
    reason: str | None = None


class FailIn(WireModel):
    reason: str | None = None
    retry: bool = True


class BestOut(BaseModel):
    trials: list[TrialPublic]
