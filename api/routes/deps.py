"""Dependencies shared by the routes: the database of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request

from ..db.engine import Database


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


#: Ids and numbers are 32-bit integers on every backend; larger ones cannot exist (404).
MAX_ID = 2**31 - 1
StudyId = Annotated[int, Path(ge=0, le=MAX_ID, description="the study's id")]
TrialNumber = Annotated[int, Path(ge=0, le=MAX_ID, description="the trial's number in its study")]
