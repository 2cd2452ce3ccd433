"""``/studies/{id}/trials/{n}/checkpoint``: a trial's saved training state, as opaque bytes.

A worker saves the state it needs to train on later (a model, an optimizer, a
step counter: any bytes) while its trial runs or once it is paused; whoever
resumes the trial, on any machine, loads it. Bodies stream into the artifact
store; one over ``TUNEFORGE_MAX_CHECKPOINT_BYTES`` is answered 413 and nothing
is stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ...core.errors import NotFound
from ..artifacts import ArtifactTooLarge, StoredArtifact, checkpoint_key, chunks_of
from ..db.engine import Database
from ..limits import BodyTooLarge
from ..openapi import BODY, errors
from ..services import checkpoints as service
from .deps import Store, StudyId, TrialNumber, get_db

router = APIRouter(prefix="/studies/{study_id}/trials/{number}", tags=["trials"])
DB = Annotated[Database, Depends(get_db)]
#: The path pattern of this route, for the body-size middleware.
CHECKPOINT_PATH = r"/api/v1/studies/[^/]+/trials/[^/]+/checkpoint"


class CheckpointOut(BaseModel):
    """A stored checkpoint."""

    study_id: int
    number: int
    size_bytes: int = Field(description="bytes stored")
    sha256: str = Field(description="SHA-256 of the bytes, hex")
    saved_at: str = Field(description="when it was stored (ISO 8601, UTC)")
    step: int | None = Field(None, description="the step the worker said it saved at")


def _out(study_id: int, number: int, stored: StoredArtifact) -> CheckpointOut:
    return CheckpointOut(
        study_id=study_id,
        number=number,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        saved_at=stored.saved_at,
        step=stored.info.get("step"),
    )


BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}


@router.put(
    "/checkpoint",
    response_model=CheckpointOut,
    operation_id="saveCheckpoint",
    summary="Save a trial's checkpoint",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/octet-stream": BINARY}}
    },
    responses=errors(*BODY, 404, 409, 503),
)
async def save_checkpoint(
    study_id: StudyId,
    number: TrialNumber,
    request: Request,
    db: DB,
    store: Store,
    step: Annotated[int | None, Query(ge=0, le=2**31 - 1, description="the step saved")] = None,
) -> CheckpointOut:
    """Store the request body as the trial's checkpoint, replacing the previous one.
    The trial must be active, stopping or paused (409 otherwise)."""
    study = await run_in_threadpool(service.check_writable, db, study_id, number)
    key = checkpoint_key(study, number)
    limit = request.app.state.settings.max_checkpoint_bytes
    try:
        stored = await store.save(key, request.stream(), limit, {"step": step})
    except ArtifactTooLarge:
        raise BodyTooLarge from None  # the size-limit middleware answers 413
    if await run_in_threadpool(service.study_gone, db, study_id):
        # deleted while the body was uploading: the checkpoint goes with it
        await run_in_threadpool(service.delete_study_artifacts, store, study)
        raise NotFound(f"study {study_id} does not exist", field="study_id")
    return _out(study_id, number, stored)


@router.get(
    "/checkpoint",
    response_class=StreamingResponse,
    operation_id="loadCheckpoint",
    summary="Load a trial's checkpoint",
    responses={
        200: {
            "description": "The checkpoint's bytes; `X-Checkpoint-Step` and "
            "`X-Checkpoint-Sha256` describe them.",
            "content": {"application/octet-stream": BINARY},
        },
        **errors(404, 422, 503),
    },
)
def load_checkpoint(
    study_id: StudyId, number: TrialNumber, db: DB, store: Store
) -> StreamingResponse:
    """The bytes last saved for the trial (404 when it has none)."""
    stored, handle = service.open_checkpoint(db, store, study_id, number)
    headers = {
        "X-Checkpoint-Sha256": stored.sha256,
        "X-Checkpoint-Saved-At": stored.saved_at,
        "ETag": f'"{stored.sha256}"',
        "Content-Length": str(stored.size_bytes),
    }
    if stored.info.get("step") is not None:
        headers["X-Checkpoint-Step"] = str(stored.info["step"])
    return StreamingResponse(
        chunks_of(handle), media_type="application/octet-stream", headers=headers
    )
