"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from ..db.engine import Database
from ..db.migrate import SchemaOutdated, check_schema

router = APIRouter(tags=["operations"])
log = logging.getLogger("tuneforge.api")


class Health(BaseModel):
    """The process answers."""

    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    """Whether the database answers and its schema is current."""

    status: str = Field(
        description="ready, schema_outdated or database_unreachable", examples=["ready"]
    )
    detail: str | None = Field(default=None, description="why not ready")


@router.get("/healthz", response_model=Health, operation_id="healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    """Answers as long as the process runs."""
    return {"status": "ok"}


_NOT_READY: dict[int | str, dict[str, Any]] = {
    200: {"model": Readiness, "description": "Ready to serve."},
    503: {"model": Readiness, "description": "The database is unreachable or its schema is old."},
}


@router.get("/readyz", operation_id="readyz", summary="Readiness", responses=_NOT_READY)
def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and its schema is at the newest migration."""
    db: Database = request.app.state.db
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        check_schema(db.engine, db.url)
    except SchemaOutdated as exc:
        # its message carries the database URL: log it, reply without it
        log.warning("readyz: %s", exc)
        detail = "the database schema is older than this server: run `tuneforge db upgrade`"
        return JSONResponse({"status": "schema_outdated", "detail": detail}, status_code=503)
    except Exception:
        # the driver's message names the database host and port: log it, reply generically
        log.warning("readyz: the database is not reachable", exc_info=True)
        detail = "the database is not reachable; the server log has the cause"
        return JSONResponse({"status": "database_unreachable", "detail": detail}, status_code=503)
    return JSONResponse({"status": "ready"})


_METRICS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format.",
        "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/metrics",
    response_class=Response,
    operation_id="metrics",
    summary="Prometheus metrics",
    responses=_METRICS,
)
def metrics(request: Request) -> Response:
    """The server's metrics in the Prometheus text format."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
