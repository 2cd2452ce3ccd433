"""``/nested-cv``: nested cross-validation as one inner study per outer fold."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from ..auth import CurrentProject
from ..db.engine import Database
from ..openapi import BODY, errors
from ..schemas.common import JsonInt, WireModel, declared
from ..schemas.enums import StudyStateField
from ..schemas.studies import StudyCreate
from ..services import nested
from ..services.nested import MAX_OUTER
from .deps import get_db

router = APIRouter(prefix="/nested-cv", tags=["nested cross-validation"])
DB = Annotated[Database, Depends(get_db)]


class NestedCVIn(WireModel):
    """A study spec with a managed sklearn objective, split into ``outer_splits`` inner studies."""

    study: StudyCreate
    outer_splits: JsonInt = declared(5, minimum=2, maximum=MAX_OUTER, description="outer folds")
    seed: JsonInt = 0
    #: Start the inner studies on the Celery workers (false: drive them yourself).
    run: bool = Field(default=True, description="start the inner studies on the workers")


class NestedFold(BaseModel):
    """One outer fold: its inner study, the configuration it chose and both scores."""

    model_config = ConfigDict(use_enum_values=True)

    index: int
    study_id: int
    state: StudyStateField
    trial_counts: dict[str, int]
    best_params: dict[str, Any] | None
    inner_score: float | None = Field(description="the best trial's cross-validated score")
    outer_score: float | None = Field(description="the held-out score, once evaluated")
    evaluation_state: str | None


class NestedCVSummary(BaseModel):
    """Every outer fold, and the mean and spread of the outer scores."""

    group: str
    outer_splits: int
    folds: list[NestedFold]
    done: bool = Field(description="every fold has its outer score")
    mean: float | None
    std: float | None


@router.post(
    "",
    status_code=201,
    response_model=NestedCVSummary,
    operation_id="startNestedCv",
    summary="Start a nested cross-validation",
    responses=errors(*BODY, 409, 503),
)
def start(body: NestedCVIn, request: Request, db: DB, project: CurrentProject) -> dict[str, Any]:
    """Create one inner study per outer fold (named ``<name>-outer<i>``) in one transaction,
    and start them on the workers when ``run``."""
    spec = body.study.model_dump(exclude_none=True)
    summary = nested.start_nested_cv(
        db,
        spec,
        body.outer_splits,
        body.seed,
        run=body.run,
        policy=request.app.state.settings.objective_policy(),
        project_id=project,
        default_max_failed_trials=request.app.state.settings.default_max_failed_trials,
    )
    request.app.state.reconciler.wake()
    return summary


@router.get(
    "/{group}",
    response_model=NestedCVSummary,
    operation_id="getNestedCv",
    summary="Get a nested cross-validation's progress and scores",
    responses=errors(404, 503),
)
def summary(
    group: Annotated[str, Path(description="the outer study's name")],
    db: DB,
    project: CurrentProject,
) -> dict[str, Any]:
    """The state and scores of each outer fold's study."""
    return nested.nested_summary(db, group, project)
