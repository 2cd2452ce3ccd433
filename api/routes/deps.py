"""Dependencies shared by the routes: the database of the running app."""

from __future__ import annotations

from fastapi import Request

from ..db.engine import Database


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db
