"""``/studies/{id}/importance``, ``/hypervolume`` and ``/warm-start``: what the study's results say about its
parameters, and the prior history its algorithm sees."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ..db.engine import Database
from ..openapi import errors
from ..schemas.analysis import (
    HypervolumeOut,
    ImportanceOut,
    WarmStartOut,
    hypervolume_out,
    importance_out,
    warm_start_out,
)
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


@router.get(
    "/{study_id}/hypervolume",
    response_model=HypervolumeOut,
    operation_id="getHypervolume",
    summary="Hypervolume of the Pareto front after each completed trial",
    responses=errors(404, 422, 503),
)
def hypervolume(study_id: StudyId, db: DB) -> HypervolumeOut:
    """For a study with two or more objectives: the hypervolume its feasible completed
    trials dominate, after each completed trial in the order they finished. The reference
    point is the spec's ``hypervolume_reference``, or inferred and stated. 422 naming
    ``metrics`` for a study with one objective."""
    return hypervolume_out(service.hypervolume(db, study_id))


@router.get(
    "/{study_id}/warm-start",
    response_model=WarmStartOut,
    operation_id="getWarmStart",
    summary="The prior history a warm-started study's algorithm sees",
    responses=errors(404, 422, 503),
)
def warm_start(study_id: StudyId, db: DB) -> WarmStartOut:
    """For each earlier study in ``warm_start``: the completed trials the algorithm sees,
    and those skipped because their parameters do not fit this study's space or a value
    of an objective or constraint is missing."""
    return warm_start_out(service.warm_start_summary(db, study_id))
