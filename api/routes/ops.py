"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from ..db.engine import Database
from ..db.migrate import SchemaOutdated, check_schema

router = APIRouter(tags=["operations"])
log = logging.getLogger("tuneforge.api")


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
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


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
