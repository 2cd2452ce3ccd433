"""The server's thread pools: where the blocking part of a request runs.

Routes that are plain functions, and their plain-function dependencies (the
authorization read), run in anyio's default thread pool. It is cut from
anyio's 40 threads to ``Settings.threads`` (16), because more threads make a
busy study slower, not faster: only one thread runs Python at a time, and a
request that holds a study's row lock must win the interpreter lock once per
statement against every other thread that is running. Fewer than 16 made
measurements queue for a thread once completions shared their transactions
(docs/performance.md).

The hot trial calls (suggest, measurements, heartbeats, complete, fail) are async
routes that hand their work to a pool here, and :func:`_run_in` runs their
authorization on that same thread first: one hand-over per call, not two.

Complete and fail run in a second pool of the same size, the study writers'
pool, and suggest in a third: each of them takes its study's row lock, so on a
busy study most of them are waiting for it, and a suggest may also wait for a
model fit in the fit child (api/services/fit_pool.py). In the default pool
they would hold the threads that measurements, heartbeats and reads need, and
a completion must never wait behind suggests that wait for a fit. Measured on
two cores: docs/performance.md ("Row locks and thread pools").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request

from .auth import authorize_here

_R = TypeVar("_R")


def configure(app: FastAPI, threads: int) -> None:
    """Size the default pool and create the writers' and suggest's pools; call on the server's
    event loop (the app's lifespan): anyio keeps the default pool per event loop."""
    to_thread.current_default_thread_limiter().total_tokens = threads
    app.state.writer_threads = CapacityLimiter(threads)
    app.state.suggest_threads = CapacityLimiter(threads)


async def in_writer_pool(request: Request, call: Callable[[], _R]) -> _R:
    """``call()`` on a thread of the study writers' pool (complete, fail)."""
    return await _run_in(request, "writer_threads", call)


async def in_suggest_pool(request: Request, call: Callable[[], _R]) -> _R:
    """``call()`` on a thread of suggest's pool."""
    return await _run_in(request, "suggest_threads", call)


async def in_default_pool(request: Request, call: Callable[[], _R]) -> _R:
    """``call()`` on a thread of the default pool (measurements, heartbeats: async routes
    whose authorization runs on that thread too, api/auth.py ``ON_WORK_THREAD``)."""
    return await _run_in(request, None, call)


async def _run_in(request: Request, pool: str | None, call: Callable[[], _R]) -> _R:
    """``call()`` on a thread of the app's ``pool`` (the default pool when the app was
    not started through its lifespan), after the request's pending authorization
    (api/auth.py ``ON_WORK_THREAD``) on the same thread."""
    limiter: Any = getattr(request.app.state, pool, None) if pool else None

    def run() -> _R:
        authorize_here(request)
        return call()

    return await to_thread.run_sync(run, limiter=limiter)
