"""Request ids and the server's log format (``TUNEFORGE_LOG_FORMAT=text|json``).

Every request gets an id: the caller's ``X-Request-ID`` when it is a sane token
(1-128 characters of ``A-Z a-z 0-9 . _ : -``), otherwise a new random one. The
id is echoed in the ``X-Request-ID`` response header and added, as
``request_id``, to every log record emitted while the request runs (the
server's own ``tuneforge.*`` loggers and, in JSON mode, uvicorn's access and
error logs).

:func:`configure_logging` runs when the app starts (after uvicorn has set up its
own loggers). ``text`` keeps uvicorn's lines as they are and prints tuneforge's
warnings and errors with the request id; ``json`` writes one JSON object per line
for both, at the configured level.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
LOG_FORMATS = ("text", "json")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_HEADER = REQUEST_ID_HEADER.lower().encode()
#: The id of the request being served in this context ("-" outside requests).
request_id_var: ContextVar[str] = ContextVar("tuneforge_request_id", default="-")
_TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's request id when it is a sane token, else a fresh random one."""
    for name, value in headers:
        if name.lower() == _HEADER:
            candidate = value.decode("latin-1")
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI middleware: sets :data:`request_id_var` and echoes ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(list(scope.get("headers") or []))
        # not reset afterwards: each request runs in its own task (its own context), and
        # the error handler outside this middleware still logs with the id
        request_id_var.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, rid.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's id, or "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _ours(handler: logging.Handler) -> bool:
    return getattr(handler, "_tuneforge", False)


def configure_logging(log_format: str, level: str) -> None:
    """Install tuneforge's log handler (idempotent); in ``json`` mode reformat uvicorn's too."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    formatter: logging.Formatter = (
        JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT)
    )
    logger = logging.getLogger("tuneforge")
    for old in [h for h in logger.handlers if _ours(h)]:
        logger.removeHandler(old)
    handler = _StderrHandler()
    handler._tuneforge = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    if log_format == "text":
        # as before request ids existed: only warnings and errors, so an embedded server
        # (whose settings keep the "info" default) adds no lines to a notebook
        handler.setLevel(max(logging.WARNING, logger.level))
    if log_format == "json":
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            for h in logging.getLogger(name).handlers:
                h.setFormatter(formatter)
                if not any(isinstance(f, RequestIdFilter) for f in h.filters):
                    h.addFilter(RequestIdFilter())
