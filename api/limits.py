"""Request size limits as a pure ASGI middleware (413 with the API error body).

The body limit holds whether the client declares a ``Content-Length`` or streams
the body with ``Transfer-Encoding: chunked``: a declared length over the limit
is refused before anything is read; an undeclared one is read, counting, up to
the limit and handed on to the app only when it fits (FastAPI would otherwise
turn an error raised while it reads the body into a 400).

Size limits of a study spec live beside the rules they guard:
``tuneforge.core.space`` (``MAX_PARAMETERS``, ``MAX_CHOICES``) and
``tuneforge.api.text_guard`` (``MAX_JSON_DEPTH``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """The body grew past the limit while it was being read."""


async def send_error(send: Send, status: int, code: str, message: str, details: Any) -> None:
    """Answer with the API error body ``{"error": {code, message, details}}``."""
    body = {"error": {"code": code, "message": message, "details": details}}
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


#: A path pattern whose bodies the route streams itself (checkpoints, uploads), with its limit.
StreamedRoute = tuple[str, int]


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, declared or chunked.

    Routes matching a pattern of ``streamed`` (a regular expression over the
    path, and its own limit) read their bodies themselves, chunk by chunk, into
    the artifact store: their bodies are only counted, never buffered here.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, streamed: Sequence[StreamedRoute] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = [(re.compile(pattern), limit) for pattern, limit in streamed]

    def _limit_of(self, path: str) -> tuple[int, bool]:
        """The path's body limit and whether its route streams the body itself."""
        for pattern, limit in self.streamed:
            if pattern.fullmatch(path):
                return limit, True
        return self.max_bytes, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, streamed = self._limit_of(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return
        if declared is None and not streamed:
            try:
                receive = await self._buffered(receive)
            except BodyTooLarge:
                await self._reject(send, limit)
                return
        await self._counted(scope, receive, send, limit)

    async def _buffered(self, receive: Receive) -> Receive:
        """Read an undeclared (chunked) body up to the limit; a ``receive`` replaying it."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first: Message = message
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        return replay

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app, stopping it if the body turns out larger than it declared."""
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send, limit)
        except BaseExceptionGroup as group:  # raised in a middleware's task group
            if group.subgroup(BodyTooLarge) is None or started:
                raise
            await self._reject(send, limit)

    async def _reject(self, send: Send, limit: int) -> None:
        await send_error(
            send,
            413,
            "payload_too_large",
            f"request body exceeds {limit} bytes",
            {"max_bytes": limit},
        )
