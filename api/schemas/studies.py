"""Wire models of studies: the create body, the public Study and its pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ...core.space import MAX_PARAMETERS
from ...core.study import MAX_METRICS, MAX_NAME_LENGTH, MAX_SEED, MAX_TRIALS_LIMIT, Study
from .common import NOT_BLANK, JsonInt, WireModel, declared
from .enums import AlgorithmField, StudyStateField
from .spec import (
    EarlyStopping,
    FidelitySpec,
    MetricSpec,
    Number,
    Objective,
    ParameterSpec,
    RetriesSpec,
    WarmStartRef,
    hypervolume_reference_field,
    warm_start_field,
)
from .trials import TrialPublic, trial_public

#: A budget: 1 to core's limit, or null for none.
BUDGET = declared(None, minimum=1, maximum=MAX_TRIALS_LIMIT)
DESCRIPTION_LENGTH = 10_000


class StudyCreate(WireModel):
    """The ``POST /studies`` body: the study spec (docs/api.md lists every rule)."""

    name: str = declared(minLength=1, maxLength=MAX_NAME_LENGTH, pattern=NOT_BLANK)
    description: str | None = declared(None, maxLength=DESCRIPTION_LENGTH)
    parameters: list[ParameterSpec] = declared(minItems=1, maxItems=MAX_PARAMETERS)
    metrics: list[MetricSpec] = declared(minItems=1, maxItems=MAX_METRICS)
    algorithm: AlgorithmField = Field(default="auto")
    algorithm_options: dict[str, Any] = Field(
        default_factory=dict, description="per algorithm (docs/algorithms.md)"
    )
    early_stopping: EarlyStopping | None = Field(
        default=None, description='default {"rule": "none"}'
    )
    fidelity: FidelitySpec | None = None
    max_trials: JsonInt | None = BUDGET
    max_active_trials: JsonInt | None = BUDGET
    max_failed_trials: JsonInt | None = BUDGET
    retries: RetriesSpec | None = None
    seed: JsonInt = declared(0, minimum=0, maximum=MAX_SEED)
    objective: Objective | None = Field(
        default=None, description="a managed objective the workers run (tuneforge run)"
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    warm_start: list[WarmStartRef] | None = warm_start_field()
    hypervolume_reference: dict[str, Number] | None = hypervolume_reference_field()


class StudyPatch(WireModel):
    """Budgets, description, metadata or the state; other fields cannot change."""

    state: StudyStateField | None = Field(default=None, description="null: unchanged")
    max_trials: JsonInt | None = BUDGET
    max_active_trials: JsonInt | None = BUDGET
    max_failed_trials: JsonInt | None = BUDGET
    description: str | None = declared(None, maxLength=DESCRIPTION_LENGTH)
    metadata: dict[str, Any] | None = None


class StudyPublic(BaseModel):
    """A study: its normalized spec (defaults filled in), state, counts and best trial."""

    model_config = ConfigDict(use_enum_values=True)

    id: int
    name: str
    description: str | None
    parameters: list[ParameterSpec]
    metrics: list[MetricSpec]
    algorithm: AlgorithmField
    algorithm_options: dict[str, Any]
    early_stopping: EarlyStopping
    fidelity: FidelitySpec | None
    max_trials: int | None
    max_active_trials: int | None
    max_failed_trials: int | None
    retries: RetriesSpec
    seed: int
    objective: Objective | None
    metadata: dict[str, Any]
    warm_start: list[int] | None = warm_start_field()
    hypervolume_reference: dict[str, float] | None = hypervolume_reference_field()
    project: str
    state: StudyStateField
    completion_reason: str | None
    created_at: datetime
    updated_at: datetime
    trial_counts: dict[str, int]
    best_trial: TrialPublic | None
    managed: bool = Field(default=False, description="its objective runs on the workers")
    evaluation: dict[str, Any] | None = Field(
        default=None, description="the held-out evaluation (POST .../evaluate)"
    )


class EvaluationIn(BaseModel):
    """A worker's held-out evaluation (or its failure)."""

    model_config = ConfigDict(extra="allow")

    state: str | None = Field(default=None, description="'failed' with error; else a result")
    trial_number: int | None = None
    params: dict[str, Any] | None = None
    cv_score: float | None = None
    test_score: float | None = None
    error: str | None = None


class StudyPage(BaseModel):
    """One page of studies; pass ``next_page_token`` back until it is null."""

    studies: list[StudyPublic]
    next_page_token: str | None


def study_public(study: Study) -> StudyPublic:
    single = len(study.spec.objectives) == 1
    best = study.best_trials[0] if single and study.best_trials else None
    return StudyPublic(
        **study.spec.to_dict(),
        id=study.id,
        project=study.project,
        state=study.state,
        completion_reason=study.completion_reason,
        created_at=study.created_at,
        updated_at=study.updated_at,
        trial_counts=dict(study.trial_counts),
        best_trial=trial_public(best) if best is not None else None,
        managed=study.managed,
        evaluation=dict(study.evaluation) if study.evaluation is not None else None,
    )
