"""Wire models of studies: the create body, the public Study and its pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ...core.study import Study
from .common import WireModel
from .trials import TrialPublic, trial_public


class ConditionIn(WireModel):
    parent: str
    values: list[Any]


class ParameterIn(WireModel):
    """One parameter: float / int with low, high, scale, step; discrete / categorical with values."""

    name: str
    type: str = Field(description="float | int | discrete | categorical")
    low: float | None = None
    high: float | None = None
    scale: str | None = Field(default=None, description="linear (default) | log")
    step: float | None = None
    values: list[Any] | None = None
    condition: ConditionIn | None = None
    grid_points: int | None = None


class MetricIn(WireModel):
    name: str
    goal: str = "maximize"
    role: str = "objective"
    threshold: float | None = None


class RetriesIn(WireModel):
    max_retries: int = 2
    lease_seconds: float = 600


class StudyCreate(WireModel):
    """The ``POST /studies`` body (API.md "Study spec")."""

    name: str
    description: str | None = None
    parameters: list[ParameterIn]
    metrics: list[MetricIn]
    algorithm: str = "auto"
    algorithm_options: dict[str, Any] = Field(default_factory=dict)
    early_stopping: dict[str, Any] | None = None
    fidelity: dict[str, Any] | None = None
    max_trials: int | None = None
    max_active_trials: int | None = None
    max_failed_trials: int | None = None
    retries: RetriesIn | None = None
    seed: int = 0
    objective: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class StudyPatch(WireModel):
    state: str | None = None
    max_trials: int | None = None
    max_active_trials: int | None = None
    max_failed_trials: int | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None


class StudyPublic(BaseModel):
    id: int
    name: str
    description: str | None
    parameters: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    algorithm: str
    algorithm_options: dict[str, Any]
    early_stopping: dict[str, Any]
    fidelity: dict[str, Any] | None
    max_trials: int | None
    max_active_trials: int | None
    max_failed_trials: int | None
    retries: dict[str, Any]
    seed: int
    objective: dict[str, Any] | None
    metadata: dict[str, Any]
    project: str
    state: str
    completion_reason: str | None
    created_at: datetime
    updated_at: datetime
    trial_counts: dict[str, int]
    best_trial: TrialPublic | None
    managed: bool = False
    evaluation: dict[str, Any] | None = None


class EvaluationIn(BaseModel):
    """A worker's held-out evaluation (or its failure)."""

    model_config = ConfigDict(extra="allow")

    state: str | None = None
    trial_number: int | None = None
    params: dict[str, Any] | None = None
    cv_score: float | None = None
    test_score: float | None = None
    error: str | None = None


class StudyPage(BaseModel):
    studies: list[StudyPublic]
    next_page_token: str | None


def study_public(study: Study) -> StudyPublic:
    single = len(study.spec.objectives) == 1
    best = study.best_trials[0] if single and study.best_trials else None
    return StudyPublic(
        **study.spec.to_dict(),
        id=study.id,
        project=study.project,
        state=study.state.value,
        completion_reason=study.completion_reason,
        created_at=study.created_at,
        updated_at=study.updated_at,
        trial_counts=dict(study.trial_counts),
        best_trial=trial_public(best) if best is not None else None,
        managed=study.managed,
        evaluation=dict(study.evaluation) if study.evaluation is not None else None,
    )
