"""The hot routes (api/hot_routes.py) answer exactly as FastAPI's own routes do.

The same script of trial calls runs through the real app twice, once with hot routes
and once without (``hot_routes=False``), on a fresh database each time, on SQLite and
PostgreSQL: good calls, and the bodies, ids, content types and methods FastAPI refuses.
Every reply must have the same status, content type and JSON body (timestamps aside);
the hot app must have served the good calls itself and handed the others on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import _truncate, make_client
from tests.specs import small_spec
from tuneforge.api.db.migrate import upgrade
from tuneforge.api.hot_routes import HotRoute

API = "/api/v1/studies"
JSON = {"content-type": "application/json"}

#: (method, path under the study's trials, keyword arguments of ``client.request``, who
#: answers with hot routes: ``s`` a hot route, ``h`` FastAPI's route after a hot route
#: handed it on, ``-`` FastAPI's route, no hot route matching); ``{n}`` is the number of
#: the trial the script's first suggest handed out, ``{m}`` of the last.
SCRIPT: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/suggest", {"json": {"client_id": "w"}}, "s"),
    ("POST", "/suggest", {"json": {"client_id": "w", "count": 2}}, "s"),
    ("POST", "/suggest", {"json": {"count": "many"}}, "h"),
    ("POST", "/suggest", {"json": {"count": 0}}, "s"),
    ("POST", "/suggest", {"json": ["not", "an", "object"]}, "h"),
    ("POST", "/suggest", {"content": b"{not json", "headers": JSON}, "h"),
    ("POST", "/suggest", {"content": b"", "headers": JSON}, "h"),
    ("POST", "/suggest", {}, "h"),
    (
        "POST",
        "/suggest",
        {"content": b'{"client_id": "t"}', "headers": {"content-type": "text/plain"}},
        "h",
    ),
    (
        "POST",
        "/suggest",
        {
            "content": b'{"client_id": "c"}',
            "headers": {"content-type": "application/json; charset=utf-8"},
        },
        "s",
    ),
    (
        "POST",
        "/suggest",
        {"content": b'{"client_id": "v"}', "headers": {"content-type": "application/vnd.x+json"}},
        "h",
    ),
    ("GET", "/suggest", {}, "-"),
    (
        "POST",
        "/suggest",
        {"content": b'{"client_id": "' + b"x" * (5 << 20) + b'"}', "headers": JSON},
        "-",
    ),
    ("POST", "/suggest", {"chunked_mib": 5, "headers": JSON}, "-"),
    ("POST", "/{n}/measurements", {"json": {"step": 1, "values": {"accuracy": 0.5}}}, "s"),
    (
        "POST",
        "/{n}/measurements",
        {"json": {"step": 2, "values": {"accuracy": 0.4}, "elapsed_seconds": 1.5}},
        "s",
    ),
    ("POST", "/{n}/measurements", {"json": {"step": "x", "values": {"accuracy": 0.4}}}, "h"),
    (
        "POST",
        "/{n}/measurements",
        {"json": {"step": 3, "values": {"accuracy": 0.4}, "junk": 1}},
        "h",
    ),
    ("POST", "/{n}/measurements", {"json": {"step": 3}}, "h"),
    ("POST", "/{n}/measurements", {"json": {"step": 3, "values": {"nope": 1.0}}}, "s"),
    ("POST", "/999/measurements", {"json": {"step": 1, "values": {"accuracy": 0.5}}}, "s"),
    ("POST", "/{n}/heartbeat", {}, "s"),
    ("POST", "/{n}/heartbeat", {"json": {}}, "s"),
    ("POST", "/{n}/heartbeat", {"json": {"ignored": True}}, "s"),
    ("POST", "/{n}/heartbeat", {"json": []}, "h"),
    ("POST", "/{n}/heartbeat", {"json": None}, "s"),
    ("POST", "/{n}/heartbeat", {"content": b"x", "headers": JSON}, "h"),
    ("POST", "/{n}/heartbeat", {"content": b"x"}, "h"),
    ("GET", "/{n}/heartbeat", {}, "-"),
    ("POST", "/999/heartbeat", {}, "s"),
    ("POST", "/99999999999/heartbeat", {}, "-"),
    ("POST", "/2147483648/heartbeat", {}, "-"),
    ("POST", "/-1/heartbeat", {}, "-"),
    ("POST", "/007/heartbeat", {}, "-"),
    ("POST", "/{n}/complete", {"json": {"values": "low"}}, "h"),
    ("POST", "/{n}/complete", {"json": {"values": {"other": 1.0}}}, "s"),
    (
        "POST",
        "/{n}/complete",
        {"json": {"values": {"accuracy": 0.25}, "metadata": {"k": "v"}}},
        "s",
    ),
    ("POST", "/{n}/complete", {"json": {"values": {"accuracy": 0.2}}}, "s"),
    ("POST", "/{n}/heartbeat", {}, "s"),
    ("POST", "/{n}/measurements", {"json": {"step": 9, "values": {"accuracy": 0.5}}}, "s"),
    ("POST", "/suggest", {"json": {"client_id": "w"}}, "s"),
    ("POST", "/{m}/complete", {"json": {"infeasible": True, "reason": "no memory"}}, "s"),
    ("POST", "/{m}/complete", {"json": {}}, "s"),
]


def _fresh(backend: str, tmp_path: Path, pg_url: str | None, label: str) -> str:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / f'{label}.db'}"
        upgrade(url)
        return url
    assert pg_url is not None
    _truncate(pg_url)
    return pg_url


def _without_clock(value: Any) -> Any:
    if isinstance(value, dict):
        # timestamps (``*_at``) and request ids differ between two equal runs
        return {
            k: _without_clock(v)
            for k, v in value.items()
            if not k.endswith("_at") and k != "request_id"
        }
    if isinstance(value, list):
        return [_without_clock(v) for v in value]
    return value


def _play(client: TestClient) -> tuple[list[tuple[int, str | None, Any]], str]:
    """Runs :data:`SCRIPT`: each reply (status, content type, JSON body without its clock)
    and who answered each call (as in the script's last column)."""
    r = client.post(API, json=small_spec("hot", algorithm="random", seed=7))
    assert r.status_code == 201, r.text
    trials = f"{API}/{r.json()['id']}/trials"
    routes = _hot(client)
    numbers: dict[str, int] = {}
    replies, answered = [], ""
    for method, path, kwargs, _ in SCRIPT:
        if "chunked_mib" in kwargs:  # a body without a length, over the limit
            mib = kwargs["chunked_mib"]
            chunks = [b'{"client_id": "', *[b"x" * (1 << 20)] * mib, b'"}']
            kwargs = {"content": iter(chunks), "headers": kwargs["headers"]}
        before = sum(h.served for h in routes), sum(h.handed_on for h in routes)
        r = client.request(method, trials + path.format(**numbers), **kwargs)
        after = sum(h.served for h in routes), sum(h.handed_on for h in routes)
        answered += "s" if after[0] > before[0] else "h" if after[1] > before[1] else "-"
        body = r.json() if r.headers.get("content-type") == "application/json" else r.text
        replies.append((r.status_code, r.headers.get("content-type"), _without_clock(body)))
        if r.status_code == 200 and path == "/suggest" and method == "POST":
            handed = [t["number"] for t in body["trials"]]
            numbers.setdefault("n", handed[0])
            numbers["m"] = handed[0]
    return replies, answered


def _hot(client: TestClient) -> list[HotRoute]:
    return [r for r in client.app.router.routes if isinstance(r, HotRoute)]  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None]]:
    pg = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    yield request.param, pg


def test_hot_routes_answer_as_fastapi_routes_do(
    backend: tuple[str, str | None], tmp_path: Path
) -> None:
    name, pg = backend
    with make_client(_fresh(name, tmp_path, pg, "hot"), reconcile_interval_seconds=0) as c:
        hot_replies, hot_answered = _play(c)
    with make_client(
        _fresh(name, tmp_path, pg, "plain"), reconcile_interval_seconds=0, hot_routes=False
    ) as c:
        assert not _hot(c)
        plain_replies, plain_answered = _play(c)
    for step, (hot, plain) in enumerate(zip(hot_replies, plain_replies, strict=True)):
        assert hot == plain, f"step {step} {SCRIPT[step][:2]}: hot {hot} != plain {plain}"
    assert hot_answered == "".join(who for *_, who in SCRIPT)
    assert set(plain_answered) == {"-"}
    statuses = {status for status, _, _ in hot_replies}
    assert {200, 400, 404, 405, 409, 422} <= statuses, statuses  # the script covers them


def test_hot_routes_are_named_by_their_templates(client: TestClient) -> None:
    """Metrics, the audit log and authorization see the route's template."""
    paths = {r.path for r in _hot(client)}
    assert paths == {
        "/api/v1/studies/{study_id}/trials/suggest",
        "/api/v1/studies/{study_id}/trials/{number}/measurements",
        "/api/v1/studies/{study_id}/trials/{number}/heartbeat",
        "/api/v1/studies/{study_id}/trials/{number}/complete",
    }
    sid = client.post(API, json=small_spec("named", algorithm="random", seed=1)).json()["id"]
    number = client.post(f"{API}/{sid}/trials/suggest", json={}).json()["trials"][0]["number"]
    assert client.post(f"{API}/{sid}/trials/{number}/heartbeat").status_code == 200
    metrics = client.get("/metrics").text
    assert 'route="/api/v1/studies/{study_id}/trials/{number}/heartbeat"' in metrics
    audit = client.get("/api/v1/audit").json()["entries"]
    assert audit[0]["route"] == "/api/v1/studies/{study_id}/trials/{number}/heartbeat"
    assert audit[0]["study_id"] == sid
