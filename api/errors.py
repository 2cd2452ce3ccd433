"""Maps every failure to the one error body of docs/api.md ``{"error": {code, message, details}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ..core.errors import (
    BadRequest,
    Conflict,
    InvalidSpec,
    NotFound,
    Temporary,
    TuneforgeError,
)

log = logging.getLogger("tuneforge.api")

STATUS = {
    InvalidSpec: 422,
    BadRequest: 400,
    NotFound: 404,
    Conflict: 409,
    Temporary: 503,
}
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_spec",
    429: "rate_limited",
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    extra = {"Retry-After": "1"} if status in (429, 503) else {}
    return JSONResponse(body, status_code=status, headers={**extra, **(headers or {})} or None)


def field_path(loc: tuple[Any, ...]) -> str:
    """``("body", "parameters", 0, "low")`` -> ``parameters[0].low``."""
    parts = [p for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


async def _tuneforge_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TuneforgeError)
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 400)
    details = exc.details
    if exc.field is not None:
        details = {"field": exc.field, **(details if isinstance(details, dict) else {})}
    return error_response(status, exc.code, str(exc), details)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "bad_request", "the request body is not valid JSON")
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",):
        return error_response(
            422, "invalid_spec", "body: a JSON object body is required", {"field": "body"}
        )
    field = field_path(tuple(first.get("loc", ())))
    message = f"{field}: {first.get('msg', 'invalid value')}"
    if first.get("type") == "extra_forbidden":
        message = f"{field}: unknown field"
    details = {
        "field": field,
        "errors": [
            {"field": field_path(tuple(e["loc"])), "message": e["msg"]} for e in errors[:20]
        ],
    }
    return error_response(422, "invalid_spec", message, details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    return error_response(exc.status_code, code, message, headers=headers or None)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette's 405 names one route's only)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal", "internal server error; the request was not applied")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TuneforgeError, _tuneforge_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
