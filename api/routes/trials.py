"""``/studies/{id}/trials``: suggest, queue, list, read, and the worker verbs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from ...core.errors import InvalidSpec
from ...core.trials import TrialState
from ..db.engine import Database
from ..schemas.common import decode_page_token, encode_page_token
from ..schemas.trials import (
    CompleteIn,
    FailIn,
    HeartbeatOut,
    MeasurementIn,
    MeasureOut,
    SuggestIn,
    SuggestOut,
    TrialCreate,
    TrialPage,
    TrialPublic,
    trial_public,
)
from ..services import suggest as suggest_service
from ..services import trials as service
from ..suggest_guard import suggest_guard
from .deps import StudyId, TrialNumber, get_db, page_size_of, state_filter

router = APIRouter(prefix="/studies/{study_id}/trials", tags=["trials"])
DB = Annotated[Database, Depends(get_db)]


@router.post("/suggest", response_model=SuggestOut)
def suggest(study_id: StudyId, body: SuggestIn, db: DB) -> SuggestOut:
    with suggest_guard(db, study_id, body.count):  # cost cap and latency metric
        trials, state = suggest_service.suggest(db, study_id, body.count, body.client_id)
    return SuggestOut(trials=[trial_public(t) for t in trials], study_state=state.value)


@router.post("", status_code=201, response_model=TrialPublic)
def create_trial(study_id: StudyId, body: TrialCreate, db: DB) -> TrialPublic:
    trial = service.create_trial(db, study_id, body.params, body.state, body.values, body.metadata)
    return trial_public(trial)


@router.get("", response_model=TrialPage)
def list_trials(
    study_id: StudyId,
    db: DB,
    state: str | None = None,
    updated_after: datetime | None = None,
    client_id: str | None = None,
    page_size: int = 100,
    page_token: str | None = None,
) -> TrialPage:
    if updated_after is not None and updated_after.tzinfo is None:
        raise InvalidSpec(
            "must carry a timezone (e.g. 2026-01-01T00:00:00Z)", field="updated_after"
        )
    trials, last = service.list_trials(
        db,
        study_id,
        state=state_filter(state, TrialState),
        updated_after=updated_after,
        client_id=client_id,
        after_number=decode_page_token(page_token),
        page_size=page_size_of(page_size),
    )
    return TrialPage(
        trials=[trial_public(t) for t in trials], next_page_token=encode_page_token(last)
    )


@router.get("/{number}", response_model=TrialPublic)
def get_trial(study_id: StudyId, number: TrialNumber, db: DB) -> TrialPublic:
    return trial_public(service.get_trial(db, study_id, number))


@router.post("/{number}/measurements", response_model=MeasureOut)
def add_measurement(
    study_id: StudyId, number: TrialNumber, body: MeasurementIn, db: DB
) -> MeasureOut:
    reply = service.add_measurement(
        db, study_id, number, body.step, body.values, body.elapsed_seconds
    )
    action = dict(reply.action) if reply.action is not None else None
    return MeasureOut(
        should_stop=reply.should_stop, trial_state=reply.trial_state.value, action=action
    )


@router.post("/{number}/heartbeat", response_model=HeartbeatOut)
def heartbeat(
    study_id: StudyId, number: TrialNumber, db: DB, body: dict[str, object] | None = None
) -> HeartbeatOut:
    reply = service.heartbeat(db, study_id, number)
    return HeartbeatOut(should_stop=reply.should_stop, trial_state=reply.trial_state.value)


@router.post("/{number}/complete", response_model=TrialPublic)
def complete(study_id: StudyId, number: TrialNumber, body: CompleteIn, db: DB) -> TrialPublic:
    trial = service.complete_trial(db, study_id, number, body.values, body.infeasible, body.reason)
    return trial_public(trial)


@router.post("/{number}/fail", response_model=TrialPublic)
def fail(study_id: StudyId, number: TrialNumber, body: FailIn, db: DB) -> TrialPublic:
    return trial_public(service.fail_trial_request(db, study_id, number, body.reason, body.retry))


@router.post("/{number}/stop", response_model=TrialPublic)
def stop(
    study_id: StudyId, number: TrialNumber, db: DB, body: dict[str, object] | None = None
) -> TrialPublic:
    return trial_public(service.stop_trial(db, study_id, number))
