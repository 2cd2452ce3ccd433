"""Fixtures of the SDK tests: one test body runs with the sync and the async client,
against a live server on a port and against the app in-process (ASGI).

The async client is driven from sync test code through :class:`Synced`, which
runs every coroutine on an anyio portal; the tests themselves never mock the
server: every request reaches the real app on a real database.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from anyio.from_thread import BlockingPortal

import tuneforge
from tests.conftest import TRUNCATIONS, LiveServer, _truncate
from tuneforge.api.app import create_app
from tuneforge.api.db.migrate import upgrade
from tuneforge.api.settings import Settings

ASYNC_TYPES = (tuneforge.AsyncClient, tuneforge.AsyncStudy, tuneforge.AsyncTrial)


class PortalTransport(httpx.BaseTransport):
    """A sync httpx transport into an ASGI app, run on an anyio portal's event loop."""

    def __init__(self, app: Any, portal: BlockingPortal) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> httpx.Response:
            copy = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            reply = await self._inner.handle_async_request(copy)
            content = await reply.aread()
            return httpx.Response(reply.status_code, headers=reply.headers, content=content)

        return self._portal.call(send)


class Synced:
    """Drives an async SDK object from sync code: coroutines and async iterators are run
    on ``portal``; returned async handles are wrapped again."""

    def __init__(self, target: Any, portal: BlockingPortal) -> None:
        self._target = target
        self._portal = portal

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, ASYNC_TYPES):
            return Synced(value, self._portal)
        if isinstance(value, list):
            return [self._wrap(v) for v in value]
        return value

    def _run(self, awaitable: Any) -> Any:
        async def wait() -> Any:
            return await awaitable

        return self._wrap(self._portal.call(wait))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if inspect.isasyncgenfunction(value):

            def collect(*args: Any, **kwargs: Any) -> Iterator[Any]:
                async def run() -> list[Any]:
                    return [item async for item in value(*args, **kwargs)]

                return iter(self._wrap(self._portal.call(run)))

            return collect
        if callable(value):

            def call(*args: Any, **kwargs: Any) -> Any:
                result = value(*args, **kwargs)
                return self._run(result) if inspect.isawaitable(result) else self._wrap(result)

            return call
        return self._wrap(value)

    def __enter__(self) -> Any:
        return self._run(self._target.__aenter__())

    def __exit__(self, *exc: Any) -> Any:
        return self._portal.call(self._target.__aexit__, *exc)


@pytest.fixture(scope="session")
def portal() -> Iterator[BlockingPortal]:
    with anyio.from_thread.start_blocking_portal() as p:
        yield p


@pytest.fixture(scope="session")
def sdk_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sdk') / 'tuneforge.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def sdk_live(sdk_sqlite: str) -> Iterator[LiveServer]:
    """One live server for the whole session; tests keep apart by unique study names."""
    server = LiveServer(sdk_sqlite).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def asgi_apps() -> dict[str, Any]:
    """One in-process app per database backend, built when first needed."""
    return {}


def _app(request: pytest.FixtureRequest, backend: str, cache: dict[str, Any]) -> Any:
    """The in-process app on ``backend``, built when first needed. On PostgreSQL it is built
    again, on an emptied database, whenever another test emptied the session's database
    since (ids restart then, and with pytest-xdist any module may run in between)."""
    if backend == "postgresql" and cache.get("postgresql-truncations") != TRUNCATIONS[0]:
        cache.pop(backend, None)
    if backend not in cache:
        url = request.getfixturevalue("sdk_sqlite" if backend == "sqlite" else "pg_url")
        if backend == "postgresql":
            _truncate(url)  # open mode: no keys left by earlier tests on the session database
            cache["postgresql-truncations"] = TRUNCATIONS[0]
        cache[backend] = create_app(Settings(db_url=url))
    return cache[backend]


MODES = [
    "sync-live",
    "async-live",
    "sync-asgi-sqlite",
    "async-asgi-sqlite",
    "sync-asgi-postgresql",
    "async-asgi-postgresql",
]


@pytest.fixture(params=MODES)
def sdk(request: pytest.FixtureRequest, portal: BlockingPortal, asgi_apps: dict[str, Any]) -> Any:
    """A client in each mode; the async one behind :class:`Synced`."""
    flavour, _, where = request.param.partition("-")
    options: dict[str, Any] = {"retry": tuneforge.RetryPolicy(total_seconds=5)}
    if where == "live":
        url = request.getfixturevalue("sdk_live").url
    else:
        app = _app(request, where.split("-")[1], asgi_apps)
        url = "http://sdk.test"
        transport: Any = (
            PortalTransport(app, portal) if flavour == "sync" else httpx.ASGITransport(app=app)
        )
        options["transport"] = transport
    if flavour == "sync":
        with tuneforge.Client(url, **options) as client:
            yield client
        return
    client = tuneforge.AsyncClient(url, **options)
    yield Synced(client, portal)
    portal.call(client.aclose)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A study name no other test uses (studies share databases across tests)."""
    return f"{request.node.name[:80]}-{uuid.uuid4().hex[:8]}"


def float_study(name: str, **extra: Any) -> dict[str, Any]:
    """A one-parameter, one-metric study spec."""
    return {
        "name": name,
        "parameters": [{"name": "x", "type": "float", "low": -5.0, "high": 5.0}],
        "metrics": [{"name": "loss", "goal": "minimize"}],
        "algorithm": "random",
        **extra,
    }


def clean_env() -> dict[str, str]:
    """The environment for child Pythons: no TUNEFORGE_* settings, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
