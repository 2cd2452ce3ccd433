"""Text the database cannot store never reaches it: one ASGI middleware for every route.

PostgreSQL text and JSONB cannot hold a NUL character (``\\u0000``), and psycopg
cannot encode an unpaired UTF-16 surrogate (``\\ud800``, which ``json.loads``
accepts from an escaped JSON string). Either one in a study name, parameter
name, categorical value, description, ``client_id`` or ``?name=`` filter used to
reach the driver and fail there with a 500.

Why a middleware and not a check per model: the same rule holds for every
string of every request, present and future (bodies, JSON object keys, query
values, the path), and a pure ASGI middleware sees all of them in one place
before FastAPI parses anything, without knowing the routes. It:

- checks the decoded path and every query key and value;
- for JSON bodies (no content type, ``application/json`` or ``application/*+json``,
  as FastAPI decides), reads the body, parses it once and walks it (keys too),
  also enforcing :data:`MAX_JSON_DEPTH` (``json.loads`` would otherwise raise
  ``RecursionError`` on a deeply nested body);
- answers 422 ``invalid_spec`` naming the field (``parameters[0].name``) and the
  rule, or hands the untouched body on to the app. Malformed JSON is handed on
  too, so the app's usual 400 answers it.

It sits inside :class:`~tuneforge.api.limits.BodySizeLimit`, whose counting
``receive`` it reads through, so an oversized body is still a 413.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .limits import send_error

#: Deepest nesting of objects and arrays accepted in a JSON body (the body itself is depth 1).
MAX_JSON_DEPTH = 32
TEXT_RULE = "must not contain NUL (\\u0000) or unpaired surrogate characters"
_JSON_SUBTYPE = ("json",)


def bad_text(value: str) -> bool:
    """Whether ``value`` holds a NUL or a lone surrogate (text no database can store)."""
    if "\x00" in value:
        return True
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class TextProblem(Exception):
    """A string breaking the text rule, or a body nested too deep; ``field`` names where."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]" if path else f"[{key}]"
    return f"{path}.{key}" if path else key


def check_json(document: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Walk a parsed JSON document (iteratively); raise :class:`TextProblem` on the first
    bad string or object key, or when it nests deeper than ``max_depth``."""
    stack: list[tuple[Any, str, int]] = [(document, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if bad_text(node):
                raise TextProblem(path or "body", TEXT_RULE)
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > max_depth:
            raise TextProblem(path or "body", f"must not nest deeper than {max_depth} levels")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(key, str) and bad_text(key):
                raise TextProblem(path or "body", f"object keys {TEXT_RULE}")
            stack.append((value, _child(path, key), depth + 1))


def check_query(query_string: bytes) -> None:
    """The query string as Starlette decodes it: each key and value obeys the text rule."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    for key, value in pairs:
        if bad_text(key):
            raise TextProblem("query", f"parameter names {TEXT_RULE}")
        if bad_text(value):
            raise TextProblem(key, TEXT_RULE)


def is_json_request(scope: Scope) -> bool:
    """Whether FastAPI will parse this request's body as JSON (same test as FastAPI's)."""
    headers = dict(scope.get("headers") or [])
    raw = headers.get(b"content-type")
    if raw is None:
        return True
    mime = raw.decode("latin-1").split(";", 1)[0].strip().lower()
    main, _, sub = mime.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


async def read_body(receive: Receive) -> bytes:
    """The whole request body (the caller re-feeds it with :func:`replay`)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving ``body`` in one message, then deferring to ``receive``."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _check_body(body: bytes) -> None:
    try:
        document = json.loads(body)
    except RecursionError:
        raise TextProblem("body", f"must not nest deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # malformed JSON or bytes: the app's own 400 answers it
        return
    check_json(document)


class TextGuard:
    """Pure ASGI middleware rejecting NUL / lone surrogates and over-deep JSON with 422."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if bad_text(scope.get("path", "")):
                raise TextProblem("path", TEXT_RULE)
            check_query(scope.get("query_string", b""))
            if scope["method"] in ("POST", "PUT", "PATCH", "DELETE") and is_json_request(scope):
                try:
                    body = await read_body(receive)
                except ClientGone:
                    return
                _check_body(body)
                receive = replay(body, receive)
        except TextProblem as problem:
            await send_error(
                send,
                422,
                "invalid_spec",
                str(problem),
                {"field": problem.field, "rule": problem.rule},
            )
            return
        await self.app(scope, receive, send)
