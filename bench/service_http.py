"""The load generator's HTTP client for :mod:`bench.service`: aiohttp by default (light on
CPU, which matters when the clients share the server's cores), httpx on request; and the
API keys of a run on a server with keys (``--keys worker``)."""

from __future__ import annotations

import json
from typing import Any

import httpx


class Poster:
    """POSTs a JSON body and returns ``(status, decoded body)``: over aiohttp (the default,
    light on CPU) or httpx (what the Python SDK uses). The load generator shares the
    machine's cores with the server, so its own CPU per call is part of what a cell
    measures (docs/performance.md, "The load generator")."""

    def __init__(self, kind: str, connections: int, headers: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._aio: Any = None
        self._httpx: httpx.AsyncClient | None = None
        self._connections = connections

    async def __aenter__(self) -> Poster:
        if self.kind == "aiohttp":
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self._connections)
            timeout = aiohttp.ClientTimeout(total=120)
            self._aio = aiohttp.ClientSession(connector=connector, timeout=timeout)
        else:
            limits = httpx.Limits(
                max_connections=self._connections, max_keepalive_connections=self._connections
            )
            self._httpx = httpx.AsyncClient(timeout=120, limits=limits)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._aio is not None:
            await self._aio.close()
        if self._httpx is not None:
            await self._httpx.aclose()

    async def post(self, url: str, body: dict[str, Any]) -> tuple[int, Any]:
        if self._aio is not None:
            data = json.dumps(body)
            async with self._aio.post(url, data=data, headers=self._headers) as r:
                return r.status, _decoded(await r.read())
        assert self._httpx is not None
        r = await self._httpx.post(url, json=body, headers=self._headers)
        return r.status_code, _decoded(r.content)


def bench_keys(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """New keys in the database at ``url``, which turns its server's keys on: the headers
    of an editor key of the default project (it creates the studies) and of a worker key
    (it sends the trial calls, as a team's workers do; worker keys are not rate limited)."""
    from tuneforge.api.db.engine import Database
    from tuneforge.api.services import keys

    db = Database(url)
    try:
        editor = keys.create_key(db, "default", "editor")[1]
        worker = keys.create_key(db, None, "worker")[1]
    finally:
        db.dispose()
    return {"Authorization": f"Bearer {editor}"}, {"Authorization": f"Bearer {worker}"}


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
