"""``/studies``: create, list, read, update, delete, best."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from ...core.trials import StudyState
from ..auth import CurrentProject
from ..db.engine import Database
from ..openapi import BODY, STUDY_EXAMPLES, errors
from ..schemas.common import decode_page_token, encode_page_token
from ..schemas.enums import IfExists
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
from ..services.checkpoints import delete_study_artifacts
from .deps import PageSize, Store, StudyId, get_db, page_size_of

router = APIRouter(prefix="/studies", tags=["studies"])
DB = Annotated[Database, Depends(get_db)]
#: What every route naming a study can answer besides its own errors.
ONE_STUDY = (404, 422, 503)


@router.post(
    "",
    status_code=201,
    response_model=StudyPublic,
    operation_id="createStudy",
    summary="Create a study",
    responses={
        200: {
            "model": StudyPublic,
            "description": "With if_exists=return: the identical existing study.",
        },
        **errors(*BODY, 409, 503),
    },
)
def create_study(
    body: Annotated[StudyCreate, Body(openapi_examples=STUDY_EXAMPLES)],
    request: Request,
    response: Response,
    db: DB,
    project: CurrentProject,
    if_exists: Annotated[
        IfExists | None,
        Query(description="return: answer 200 with the existing study if its spec is identical"),
    ] = None,
) -> StudyPublic:
    """Create a study from its spec (201). A name already in use is a 409, unless
    ``if_exists=return`` and the spec is identical: then 200 with that study."""
    study, created = service.create_study(
        db,
        body.model_dump(exclude_none=True),
        if_exists=if_exists.value if if_exists is not None else None,
        project_id=project,
        policy=request.app.state.settings.objective_policy(),
        default_max_failed_trials=request.app.state.settings.default_max_failed_trials,
    )
    if not created:
        response.status_code = 200
    return study_public(study)


@router.get(
    "",
    response_model=StudyPage,
    operation_id="listStudies",
    summary="List studies",
    responses=errors(422, 503),
)
def list_studies(
    db: DB,
    project: CurrentProject,
    state: StudyState | None = None,
    name: str | None = None,
    page_size: PageSize = 100,
    page_token: str | None = None,
) -> StudyPage:
    """Studies in creation order, filtered by ``state`` and ``name``, one page at a time."""
    studies, last = service.list_studies(
        db,
        state=state,
        name=name,
        after_id=decode_page_token(page_token),
        page_size=page_size_of(page_size),
        project_id=project,
    )
    return StudyPage(
        studies=[study_public(s) for s in studies], next_page_token=encode_page_token(last)
    )


@router.get(
    "/{study_id}",
    response_model=StudyPublic,
    operation_id="getStudy",
    summary="Get a study",
    responses=errors(*ONE_STUDY),
)
def get_study(study_id: StudyId, db: DB) -> StudyPublic:
    """The study with its trial counts and best trial."""
    return study_public(service.get_study(db, study_id))


@router.patch(
    "/{study_id}",
    response_model=StudyPublic,
    operation_id="updateStudy",
    summary="Update a study's budgets, state, description or metadata",
    responses=errors(*BODY, 409, *ONE_STUDY),
)
def update_study(study_id: StudyId, body: StudyPatch, db: DB) -> StudyPublic:
    """Pause, resume or complete the study, or change its budgets; raising the budget of
    a study completed by it reopens the study. A null ``state`` leaves it as it is."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("state", "") is None:  # null: the state does not change
        del changes["state"]
    return study_public(service.update_study(db, study_id, changes))


@router.delete(
    "/{study_id}",
    status_code=204,
    response_class=Response,
    operation_id="deleteStudy",
    summary="Delete a study",
    responses={204: {"description": "Deleted, with its trials."}, **errors(*ONE_STUDY)},
)
def delete_study(study_id: StudyId, db: DB, store: Store) -> Response:
    """Delete the study and all its trials, measurements and checkpoints."""
    delete_study_artifacts(store, service.delete_study(db, study_id))
    return Response(status_code=204)


@router.post(
    "/{study_id}/run",
    response_model=StudyPublic,
    operation_id="runStudy",
    summary="Run a managed study on the workers",
    responses=errors(409, *ONE_STUDY),
)
def run(study_id: StudyId, request: Request, db: DB) -> StudyPublic:
    """Start executing the study's managed objective on the Celery workers."""
    study = managed.run_study(db, study_id)
    request.app.state.reconciler.mark_managed(study_id)
    request.app.state.reconciler.wake()
    return study_public(study)


@router.post(
    "/{study_id}/evaluate",
    response_model=StudyPublic,
    operation_id="evaluateStudy",
    summary="Evaluate the best configuration on the held-out rows",
    responses=errors(409, *ONE_STUDY),
)
def evaluate(
    study_id: StudyId,
    request: Request,
    db: DB,
    force: Annotated[
        bool, Query(description="score the held-out rows again (admin; recorded)")
    ] = False,
) -> StudyPublic:
    """Evaluate the best configuration once on the held-out test set (on a worker); 409
    once that evaluation exists, unless ``force`` (the replaced one is kept in
    ``evaluation.forced``)."""
    principal = getattr(request.state, "principal", None)
    key = principal.key_id if principal is not None else None
    study = managed.request_evaluation(db, study_id, force=force, by_key=key)
    request.app.state.reconciler.wake()
    return study_public(study)


@router.put(
    "/{study_id}/evaluation",
    response_model=StudyPublic,
    operation_id="storeEvaluation",
    summary="Store a held-out evaluation (workers)",
    responses=errors(*BODY, 409, *ONE_STUDY),
)
def store_evaluation(study_id: StudyId, body: EvaluationIn, db: DB) -> StudyPublic:
    """Workers store the evaluation result here (409 once one is stored)."""
    return study_public(managed.store_evaluation(db, study_id, body.model_dump(exclude_none=True)))


@router.get(
    "/{study_id}/best",
    response_model=BestOut,
    operation_id="getBest",
    summary="Get the best trial or the Pareto front",
    responses=errors(*ONE_STUDY),
)
def best(study_id: StudyId, db: DB) -> BestOut:
    """The best completed trial (one objective) or the Pareto front (several objectives)."""
    return BestOut(trials=[trial_public(t) for t in service.study_best(db, study_id)])
