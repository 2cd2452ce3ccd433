"""``/nested-cv``: nested cross-validation as one inner study per outer fold."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from ..db.engine import Database
from ..schemas.common import WireModel
from ..services import nested
from .deps import get_db

router = APIRouter(prefix="/nested-cv", tags=["nested cross-validation"])
DB = Annotated[Database, Depends(get_db)]


class NestedCVIn(WireModel):
    """A study spec with a managed sklearn objective, split into ``outer_splits`` inner studies."""

    study: dict[str, Any]
    outer_splits: int = 5
    seed: int = 0
    #: Start the inner studies on the Celery workers (false: drive them yourself).
    run: bool = True


@router.post("", status_code=201)
def start(body: NestedCVIn, request: Request, db: DB) -> dict[str, Any]:
    policy = request.app.state.settings.objective_policy()
    summary = nested.start_nested_cv(
        db, body.study, body.outer_splits, body.seed, run=body.run, policy=policy
    )
    request.app.state.reconciler.wake()
    return summary


@router.get("/{group}")
def summary(group: str, db: DB) -> dict[str, Any]:
    return nested.nested_summary(db, group)
