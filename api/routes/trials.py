"""``/studies/{id}/trials``: suggest, queue, list, read, and the worker verbs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Request, Response
from fastapi.responses import StreamingResponse

from ...core.errors import InvalidSpec
from ...core.trials import TrialState
from ..db.engine import Database
from ..openapi import BODY, COMPLETE_EXAMPLES, MEASUREMENT_EXAMPLES, SUGGEST_EXAMPLES, errors
from ..schemas import exports as export_shapes
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
from ..services import completions, exports
from ..services import suggest as suggest_service
from ..services import trials as service
from ..suggest_guard import suggest_guard
from ..threads import in_default_pool, in_suggest_pool, in_writer_pool
from .deps import PageSize, StudyId, TrialNumber, get_db, page_size_of

router = APIRouter(prefix="/studies/{study_id}/trials", tags=["trials"])
DB = Annotated[Database, Depends(get_db)]
#: A worker verb on one trial: body errors, unknown trial, state conflicts, busy database.
TRIAL_VERB = errors(*BODY, 404, 409, 503)
#: An optional body that is ignored (``{}`` or nothing).
Ignored = Annotated[dict[str, object] | None, Body(description="ignored; may be omitted")]


def dispatch_successor(request: Request, background: BackgroundTasks, study_id: int) -> None:
    """Once the reply is sent (the trial's end committed), a managed study's next task is
    dispatched at once instead of at the reconciler's next pass (api/scheduler.py). Other
    studies get no background task: its hand-over to a thread would cost every call."""
    reconciler = request.app.state.reconciler
    if reconciler.dispatches(study_id):
        background.add_task(reconciler.after_trial_ended, study_id)


@router.post(
    "/suggest",
    response_model=SuggestOut,
    operation_id="suggestTrials",
    summary="Get trials to run",
    responses=errors(*BODY, 404, 503),
)
async def suggest(
    study_id: StudyId,
    body: Annotated[SuggestIn, Body(openapi_examples=SUGGEST_EXAMPLES)],
    db: DB,
    request: Request,
) -> SuggestOut:
    """Up to ``count`` trials for this client: its own unfinished ones first, then queued
    ones, then new points from the study's algorithm. An empty list with ``study_state``
    ``completed`` means no more work. A batch whose model cost is over the study's cap
    (``count`` times the parameters; tighter for model-based algorithms) is cut to the cap:
    the reply then holds fewer trials than ``count``."""

    def run() -> SuggestOut:
        with suggest_guard(db, study_id, body.count) as count:  # cost cap and latency metric
            trials, state = suggest_service.suggest(db, study_id, count, body.client_id)
        return SuggestOut(trials=[trial_public(t) for t in trials], study_state=state)

    return await in_suggest_pool(request, run)  # api/threads.py


@router.post(
    "",
    status_code=201,
    response_model=TrialPublic,
    operation_id="createTrial",
    summary="Queue a trial or record a finished one",
    responses=errors(*BODY, 404, 409, 503),
)
def create_trial(study_id: StudyId, body: TrialCreate, db: DB) -> TrialPublic:
    """Queue a parameter set the next suggest hands out (``requested``; 409 when the study
    is not active or its budget is spent), or add one evaluated elsewhere (``completed``)."""
    trial = service.create_trial(db, study_id, body.params, body.state, body.values, body.metadata)
    return trial_public(trial)


class TrialsFormat(StrEnum):
    """How ``GET .../trials`` answers: JSON pages, or every trial streamed as CSV or JSON lines."""

    JSON = "json"
    CSV = "csv"
    JSONL = "jsonl"


EXPORTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "json: one page of trials. csv / jsonl: every matching trial, "
        "streamed (docs/analysis.md).",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


@router.get(
    "",
    response_model=TrialPage,
    operation_id="listTrials",
    summary="List a study's trials, or export them all as CSV or JSON lines",
    responses={**EXPORTS, **errors(404, 422, 503)},
)
def list_trials(
    study_id: StudyId,
    db: DB,
    state: TrialState | None = None,
    updated_after: datetime | None = None,
    client_id: str | None = None,
    page_size: PageSize = 100,
    page_token: str | None = None,
    format: TrialsFormat = TrialsFormat.JSON,
) -> Any:
    """Trials by number, filtered by ``state``, ``client_id`` or ``updated_after``
    (with a timezone), one page at a time; ``format=csv`` or ``jsonl`` streams every
    matching trial instead (``page_size`` does not apply; a ``page_token`` starts after it)."""
    if updated_after is not None and updated_after.tzinfo is None:
        raise InvalidSpec(
            "must carry a timezone (e.g. 2026-01-01T00:00:00Z)", field="updated_after"
        )
    if format != TrialsFormat.JSON:
        where = exports.ExportFilter(state, updated_after, client_id, decode_page_token(page_token))
        return export_response(db, study_id, format.value, where)
    trials, last = service.list_trials(
        db,
        study_id,
        state=state,
        updated_after=updated_after,
        client_id=client_id,
        after_number=decode_page_token(page_token),
        page_size=page_size_of(page_size),
    )
    return TrialPage(
        trials=[trial_public(t) for t in trials], next_page_token=encode_page_token(last)
    )


def export_response(db: Database, study_id: int, fmt: str, where: exports.ExportFilter) -> Response:
    """The streamed CSV or JSON-lines reply (404 before the first byte for an unknown study)."""
    plan = exports.plan_export(db, study_id)
    trials = exports.iter_trials(db, plan, where)
    if fmt == "csv":
        header = export_shapes.csv_header(plan.spec, exports.metadata_keys(db, plan, where))
        lines = export_shapes.csv_lines(header, trials)
    else:
        lines = export_shapes.jsonl_lines(trials)
    name = f"study-{study_id}-trials.{fmt}"
    return StreamingResponse(
        export_shapes.batched(lines),
        media_type=export_shapes.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/{number}",
    response_model=TrialPublic,
    operation_id="getTrial",
    summary="Get a trial",
    responses=errors(404, 422, 503),
)
def get_trial(study_id: StudyId, number: TrialNumber, db: DB) -> TrialPublic:
    """The trial with its measurements."""
    return trial_public(service.get_trial(db, study_id, number))


@router.post(
    "/{number}/measurements",
    response_model=MeasureOut,
    operation_id="reportMeasurement",
    summary="Report an intermediate result",
    responses=TRIAL_VERB,
)
async def add_measurement(
    study_id: StudyId,
    number: TrialNumber,
    body: Annotated[MeasurementIn, Body(openapi_examples=MEASUREMENT_EXAMPLES)],
    db: DB,
    request: Request,
    background: BackgroundTasks,
) -> MeasureOut:
    """Store the values at ``step`` (and the ``earlier`` ones held back) and consult the
    early-stopping rule: stop when ``should_stop`` is true, then complete the trial.
    ``next_decision_step`` says which steps' reports may wait. Extends the trial's lease."""
    earlier = [service.Reported(m.step, m.values, m.elapsed_seconds) for m in body.earlier or ()]
    reply = await in_default_pool(
        request,
        lambda: service.add_measurement(
            db, study_id, number, body.step, body.values, body.elapsed_seconds, earlier
        ),
    )
    if reply.trial_state == TrialState.PAUSED:  # a paused trial frees its slot
        dispatch_successor(request, background, study_id)
    action = dict(reply.action) if reply.action is not None else None
    return MeasureOut(
        should_stop=reply.should_stop,
        trial_state=reply.trial_state,
        action=action,
        next_decision_step=reply.next_decision_step,
    )


@router.post(
    "/{number}/heartbeat",
    response_model=HeartbeatOut,
    operation_id="heartbeat",
    summary="Extend a running trial's lease",
    responses=TRIAL_VERB,
)
async def heartbeat(
    study_id: StudyId, number: TrialNumber, db: DB, request: Request, body: Ignored = None
) -> HeartbeatOut:
    """Keep the trial's lease; the reply says whether the trial should stop."""
    reply = await in_default_pool(request, lambda: service.heartbeat(db, study_id, number))
    return HeartbeatOut(should_stop=reply.should_stop, trial_state=reply.trial_state)


@router.post(
    "/{number}/complete",
    response_model=TrialPublic,
    operation_id="completeTrial",
    summary="Finish a trial with its values",
    responses=TRIAL_VERB,
)
async def complete(
    study_id: StudyId,
    number: TrialNumber,
    body: Annotated[CompleteIn, Body(openapi_examples=COMPLETE_EXAMPLES)],
    db: DB,
    request: Request,
    background: BackgroundTasks,
) -> TrialPublic:
    """Record the final values (``pruned`` if the stopping rule stopped the trial) or mark
    the configuration ``infeasible``."""
    trial = await in_writer_pool(
        request,
        lambda: completions.complete_trial(
            db, study_id, number, body.values, body.infeasible, body.reason, body.metadata
        ),
    )
    dispatch_successor(request, background, study_id)
    return trial_public(trial)


@router.post(
    "/{number}/fail",
    response_model=TrialPublic,
    operation_id="failTrial",
    summary="Report an infrastructure failure",
    responses=TRIAL_VERB,
)
async def fail(
    study_id: StudyId,
    number: TrialNumber,
    body: FailIn,
    db: DB,
    request: Request,
    background: BackgroundTasks,
) -> TrialPublic:
    """The trial could not run (not a bad configuration: use infeasible for that); a copy
    is queued while the study's retry budget lasts and ``retry`` is true."""
    trial = await in_writer_pool(
        request,
        lambda: service.fail_trial_request(db, study_id, number, body.reason, body.retry),
    )
    dispatch_successor(request, background, study_id)
    return trial_public(trial)


@router.post(
    "/{number}/stop",
    response_model=TrialPublic,
    operation_id="stopTrial",
    summary="Ask the worker running a trial to stop",
    responses=TRIAL_VERB,
)
def stop(study_id: StudyId, number: TrialNumber, db: DB, body: Ignored = None) -> TrialPublic:
    """Mark the trial ``stopping``; its next measurement or heartbeat says so."""
    return trial_public(service.stop_trial(db, study_id, number))
