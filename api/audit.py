"""Records every mutating ``/api/v1`` request in the audit log, after its response.

A pure ASGI middleware: it notes the response status as it passes, and once the
application is done writes one row (key, project, method, route template, path,
study id, status) from what :func:`tuneforge.api.auth.authorize` left on the
request state. A failed write is logged and never changes the response.

Rows are written by group commit (:class:`GroupWriter`): a request's row is in
the database when its request finishes, as if it had written it alone, but the
requests that finish while one transaction is open share the next one, so under
load the log costs one transaction per batch instead of one per request.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass, field

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import route_template
from .db.engine import Database
from .metrics import StatusNote
from .services.audit import AuditEntry, record_many

log = logging.getLogger("tuneforge.api.audit")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PREFIX = "/api/v1/"


class AuditLog:
    """ASGI middleware writing one audit row per mutating API request."""

    def __init__(self, app: ASGIApp, db: Database) -> None:
        self.app = app
        self.writer = GroupWriter(db)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in MUTATING
            or not (scope["path"] + "/").startswith(PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        noted = StatusNote(send)
        try:
            await self.app(scope, receive, noted)
        finally:
            entry = entry_of(scope, noted.status)
            try:
                await self.writer.write(entry)
            except Exception:
                log.exception(
                    "could not write the audit entry for %s %s", entry.method, entry.route
                )


@dataclass
class _Queue:
    pending: list[tuple[AuditEntry, asyncio.Future[None]]] = field(default_factory=list)
    draining: asyncio.Task[None] | None = None


class GroupWriter:
    """Writes audit entries by group commit: :meth:`write` returns once the entry is
    committed; entries that arrive while a transaction is being written go together into
    the next one. When a batch fails, its entries are written one by one, so one bad
    entry fails only its own request's write."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # one queue per event loop (a test client may serve requests from several loops)
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )

    async def write(self, entry: AuditEntry) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queues.setdefault(loop, _Queue())
        done: asyncio.Future[None] = loop.create_future()
        queue.pending.append((entry, done))
        if queue.draining is None or queue.draining.done():
            queue.draining = loop.create_task(self._drain(queue))
        await done

    async def _drain(self, queue: _Queue) -> None:
        while queue.pending:
            batch, queue.pending = queue.pending, []
            try:
                await anyio.to_thread.run_sync(record_many, self.db, [e for e, _ in batch])
            except Exception:
                for entry, done in batch:
                    await self._write_alone(entry, done)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _write_alone(self, entry: AuditEntry, done: asyncio.Future[None]) -> None:
        try:
            await anyio.to_thread.run_sync(record_many, self.db, [entry])
        except Exception as exc:
            if not done.done():
                done.set_exception(exc)
        else:
            if not done.done():
                done.set_result(None)


def entry_of(scope: Scope, status: int) -> AuditEntry:
    """The audit entry of a finished request."""
    state = scope.get("state") or {}
    principal = state.get("principal")
    raw = scope.get("raw_path") or scope["path"].encode()
    study_id = _int((scope.get("path_params") or {}).get("study_id"))
    project = getattr(principal, "project_id", None)
    if project is None and study_id is not None:
        project = state.get("study_project")
    return AuditEntry(
        key_id=getattr(principal, "key_id", None),
        project_id=project,
        method=scope["method"],
        route=route_template(scope),
        path=raw.decode("latin-1").replace("\x00", ""),
        study_id=study_id if state.get("study_project") is not None else None,
        status=status,
    )


def _int(value: object) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        number = int(value)
        return number if number <= 2**31 - 1 else None
    return None
