"""The hot trial calls authorize on the thread that does their work (api/auth.py
``ON_WORK_THREAD``): the same refusals as every other route, in the same order (a refused
caller hears 401, 403 or 404 before any complaint about its body), and one hand-over to
a thread per call instead of two. Through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from tests.api.test_auth import WORKER_MAY, World, bearer, make_world, url_a
from tuneforge.api.audit import record_many
from tuneforge.api.auth import ON_WORK_THREAD, ROUTE_ROLES

#: A body each hot route rejects (422) when the caller may call it.
INVALID: dict[str, Any] = {"count": "many", "step": "x", "values": 3, "retry": "maybe"}


@pytest.fixture
def world(client: TestClient) -> World:
    return make_world(client)


def test_the_hot_routes_are_real_routes_workers_may_call() -> None:
    assert ON_WORK_THREAD, "no route authorizes on its work thread"
    assert ON_WORK_THREAD.issubset(ROUTE_ROLES), "ON_WORK_THREAD names a route without a role"
    assert ON_WORK_THREAD.issubset(WORKER_MAY)


@pytest.mark.parametrize("route", sorted(ON_WORK_THREAD))
def test_refusals_come_before_the_body_is_judged(
    client: TestClient, world: World, route: tuple[str, str]
) -> None:
    method, template = route
    path = url_a(template, world)
    for headers, status in (
        ({}, 401),
        (bearer("tf_1_garbage"), 401),
        (bearer(world.keys["a", "viewer"]), 403),
        (bearer(world.keys["b", "editor"]), 404),  # another project's study
    ):
        for body in (INVALID, {}):
            r = client.request(method, path, json=body, headers=headers)
            assert r.status_code == status, f"{template} {headers} {body}: {r.text}"
    if not template.endswith("/heartbeat"):  # a heartbeat has no body to judge
        r = client.request(method, path, json=INVALID, headers=bearer(world.keys["a", "editor"]))
        assert r.status_code == 422, r.text  # allowed: now the body is judged
        assert r.json()["error"]["code"] == "invalid_spec", r.text


def test_a_refused_hot_call_changes_nothing(client: TestClient, world: World) -> None:
    before = client.get(
        f"/api/v1/studies/{world.study_a}/trials/0", headers=bearer(world.keys["a", "admin"])
    ).json()
    for template in ("/complete", "/fail", "/heartbeat", "/measurements"):
        path = f"/api/v1/studies/{world.study_a}/trials/0{template}"
        body = {"values": {"accuracy": 0.9}, "step": 1, "reason": "x"}
        for key in (None, world.keys["a", "viewer"], world.keys["b", "admin"]):
            r = client.post(path, json=body, headers=bearer(key) if key else {})
            assert r.status_code in (401, 403, 404), r.text
    after = client.get(
        f"/api/v1/studies/{world.study_a}/trials/0", headers=bearer(world.keys["a", "admin"])
    ).json()
    assert after == before


def _count_hand_overs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions handed to a worker thread from now on, but for the audit row written
    after the response (batched with other requests' rows)."""
    calls: list[str] = []
    original = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if func is not record_many:
            calls.append(getattr(getattr(func, "func", func), "__name__", repr(func)))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return calls


def test_each_hot_call_hands_over_to_a_thread_once(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = bearer(world.keys["a", "editor"])
    base = f"/api/v1/studies/{world.study_a}/trials"
    calls = _count_hand_overs(monkeypatch)
    for path, body in (
        ("/suggest", {"count": 1, "client_id": "c"}),
        ("/0/measurements", {"step": 1, "values": {"accuracy": 0.5}}),
        ("/0/heartbeat", None),
        ("/0/complete", {"values": {"accuracy": 0.5}}),
    ):
        del calls[:]
        r = client.post(base + path, json=body, headers=key)
        assert r.status_code == 200, r.text
        assert len(calls) == 1, f"{path}: {calls}"
    del calls[:]  # a route that is not hot: the authorization has a hand-over of its own
    assert client.get(base + "/0", headers=key).status_code == 200
    assert calls[0] == "authorize" and len(calls) >= 2, calls
