"""``/studies/{id}/importance``: what the study's results say about its parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ..db.engine import Database
from ..openapi import errors
from ..schemas.analysis import ImportanceOut, importance_out
from ..services import analysis as service
from .deps import StudyId, get_db

router = APIRouter(prefix="/studies", tags=["analysis"])
DB = Annotated[Database, Depends(get_db)]


@router.get(
    "/{study_id}/importance",
    response_model=ImportanceOut,
    operation_id="getImportance",
    summary="Parameter importance and pairwise interactions",
    responses=errors(404, 409, 422, 503),
)
def importance(
    study_id: StudyId,
    db: DB,
    objective: Annotated[
        str | None,
        Query(max_length=128, description="a metric of the study (default: its first objective)"),
    ] = None,
) -> ImportanceOut:
    """Functional-ANOVA importance from a random forest fitted to the completed trials:
    each parameter's share of the objective's variance, and the strongest pairwise
    interactions, largest first. 409 while fewer than 5 trials completed."""
    return importance_out(service.importance(db, study_id, objective))
