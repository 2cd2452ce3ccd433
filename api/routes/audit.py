"""``/audit``: the audit log of mutating requests, newest first (admin keys)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from ..auth import CurrentProject
from ..db.engine import Database
from ..openapi import errors
from ..schemas.common import decode_page_token, encode_page_token
from ..schemas.keys import AuditPage
from ..services import audit as service
from .deps import PageSize, get_db, page_size_of

router = APIRouter(prefix="/audit", tags=["audit"])
DB = Annotated[Database, Depends(get_db)]


@router.get(
    "",
    response_model=AuditPage,
    operation_id="listAudit",
    summary="Read the audit log",
    responses=errors(422, 503),
)
def list_audit(
    db: DB, project: CurrentProject, page_size: PageSize = 100, page_token: str | None = None
) -> dict[str, Any]:
    """Who did what, when, with which result: the key's project only (every project in
    open mode)."""
    entries, before = service.list_entries(
        db,
        project_id=project,
        before_id=decode_page_token(page_token),
        page_size=page_size_of(page_size),
    )
    return {"entries": entries, "next_page_token": encode_page_token(before)}
