"""``/studies``: create, list, read, update, delete, best."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from ...core.trials import StudyState
from ..db.engine import Database
from ..schemas.common import decode_page_token, encode_page_token
from ..schemas.studies import (
    EvaluationIn,
    StudyCreate,
    StudyPage,
    StudyPatch,
    StudyPublic,
    study_public,
)
from ..schemas.trials import BestOut, trial_public
from ..services import managed
from ..services import studies as service
from .deps import StudyId, get_db, page_size_of, state_filter

router = APIRouter(prefix="/studies", tags=["studies"])
DB = Annotated[Database, Depends(get_db)]


@router.post("", status_code=201, response_model=StudyPublic)
def create_study(
    body: StudyCreate,
    request: Request,
    response: Response,
    db: DB,
    if_exists: Annotated[str | None, Query()] = None,
) -> StudyPublic:
    study, created = service.create_study(
        db,
        body.model_dump(exclude_none=True),
        if_exists=if_exists,
        policy=request.app.state.settings.objective_policy(),
    )
    if not created:
        response.status_code = 200
    return study_public(study)


@router.get("", response_model=StudyPage)
def list_studies(
    db: DB,
    state: str | None = None,
    name: str | None = None,
    page_size: int = 100,
    page_token: str | None = None,
) -> StudyPage:
    studies, last = service.list_studies(
        db,
        state=state_filter(state, StudyState),
        name=name,
        after_id=decode_page_token(page_token),
        page_size=page_size_of(page_size),
    )
    return StudyPage(
        studies=[study_public(s) for s in studies], next_page_token=encode_page_token(last)
    )


@router.get("/{study_id}", response_model=StudyPublic)
def get_study(study_id: StudyId, db: DB) -> StudyPublic:
    return study_public(service.get_study(db, study_id))


@router.patch("/{study_id}", response_model=StudyPublic)
def update_study(study_id: StudyId, body: StudyPatch, db: DB) -> StudyPublic:
    return study_public(service.update_study(db, study_id, body.model_dump(exclude_unset=True)))


@router.delete("/{study_id}", status_code=204)
def delete_study(study_id: StudyId, db: DB) -> Response:
    service.delete_study(db, study_id)
    return Response(status_code=204)


@router.post("/{study_id}/run", response_model=StudyPublic)
def run(study_id: StudyId, request: Request, db: DB) -> StudyPublic:
    """Start executing the study's managed objective on the Celery workers."""
    study = managed.run_study(db, study_id)
    request.app.state.reconciler.wake()
    return study_public(study)


@router.post("/{study_id}/evaluate", response_model=StudyPublic)
def evaluate(study_id: StudyId, request: Request, db: DB) -> StudyPublic:
    """Evaluate the best configuration once on the held-out test set (on a worker)."""
    study = managed.request_evaluation(db, study_id)
    request.app.state.reconciler.wake()
    return study_public(study)


@router.put("/{study_id}/evaluation", response_model=StudyPublic)
def store_evaluation(study_id: StudyId, body: EvaluationIn, db: DB) -> StudyPublic:
    """Workers store the evaluation result here."""
    return study_public(managed.store_evaluation(db, study_id, body.model_dump(exclude_none=True)))


@router.get("/{study_id}/best", response_model=BestOut)
def best(study_id: StudyId, db: DB) -> BestOut:
    return BestOut(trials=[trial_public(t) for t in service.study_best(db, study_id)])
