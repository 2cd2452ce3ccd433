"""``/keys``: an admin key lists, creates and revokes its own project's keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from ...core.errors import Conflict
from ..auth import CurrentProject
from ..db.engine import Database
from ..openapi import BODY, errors
from ..schemas.keys import KeyCreate, KeyCreated, KeyList, KeyPublic
from ..services import keys as service
from .deps import MAX_ID, get_db

router = APIRouter(prefix="/keys", tags=["keys"])
DB = Annotated[Database, Depends(get_db)]
KeyId = Annotated[int, Path(ge=0, le=MAX_ID, description="the key's id")]


@router.get(
    "",
    response_model=KeyList,
    operation_id="listKeys",
    summary="List the project's API keys",
    responses=errors(503),
)
def list_keys(db: DB, project: CurrentProject) -> dict[str, Any]:
    """The project's keys, revoked ones too; never the keys themselves."""
    return {"keys": service.list_keys(db, project_id=project)}


@router.post(
    "",
    status_code=201,
    response_model=KeyCreated,
    operation_id="createKey",
    summary="Create an API key (shown once)",
    responses=errors(*BODY, 409, 503),
)
def create_key(body: KeyCreate, db: DB, project: CurrentProject) -> dict[str, Any]:
    """A new key of the caller's project; ``key`` is in this reply only, never again."""
    if project is None:
        raise Conflict(
            "the server has no keys yet: create the first with `tuneforge keys create`",
            field="role",
        )
    entry, key = service.create_project_key(db, project, body.role)
    return {**entry, "key": key}


@router.delete(
    "/{key_id}",
    response_model=KeyPublic,
    operation_id="revokeKey",
    summary="Revoke an API key",
    responses=errors(404, 422, 503),
)
def revoke_key(key_id: KeyId, db: DB, project: CurrentProject) -> dict[str, Any]:
    """Revoke one of the project's keys; it is refused from the next request on."""
    return service.revoke_key(db, key_id, project_id=project)
