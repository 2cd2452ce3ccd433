"""Dependencies shared by the routes: the database of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from ...core.errors import InvalidSpec
from ..artifacts import ArtifactStore
from ..db.engine import Database

MAX_PAGE = 1000


async def get_db(request: Request) -> Database:
    """The app's database. ``async`` so FastAPI calls it on the event loop: a sync
    dependency would cost every request a hop through the thread pool."""
    db: Database = request.app.state.db
    return db


def get_artifacts(request: Request) -> ArtifactStore:
    """The app's artifact store (checkpoints, uploads), opened on first use."""
    state = request.app.state
    store: ArtifactStore | None = getattr(state, "artifacts", None)
    if store is None:
        store = ArtifactStore(state.settings.artifact_location())
        state.artifacts = store
    return store


Store = Annotated[ArtifactStore, Depends(get_artifacts)]


#: Ids and numbers are 32-bit integers on every backend; larger ones cannot exist (404).
MAX_ID = 2**31 - 1
StudyId = Annotated[int, Path(ge=0, le=MAX_ID, description="the study's id")]
TrialNumber = Annotated[int, Path(ge=0, le=MAX_ID, description="the trial's number in its study")]


#: A ``page_size`` query value (checked by :func:`page_size_of`, so the 422 names the field).
PageSize = Annotated[
    int,
    Query(
        description=f"1 to {MAX_PAGE} (default 100)",
        json_schema_extra={"minimum": 1, "maximum": MAX_PAGE},
    ),
]


def page_size_of(value: int) -> int:
    """A ``page_size`` query value, checked (422 naming the field)."""
    if not 1 <= value <= MAX_PAGE:
        raise InvalidSpec(f"must be between 1 and {MAX_PAGE}, got {value}", field="page_size")
    return value
