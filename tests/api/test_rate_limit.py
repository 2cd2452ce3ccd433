"""Per-key rate limit through the real app on SQLite and PostgreSQL: a burst beyond the
limit gets 429 with ``Retry-After``, other keys are unaffected, the caller passes again
once the bucket has refilled, and the Python SDK rides through a 429.

The limiter's clock is stepped by hand (:class:`Clock`) instead of sleeping, except in
the SDK test, which waits for real as a client would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio.from_thread
import httpx
import pytest
from fastapi.testclient import TestClient

import tuneforge
from tests.conftest import _truncate, make_client
from tests.sdk.conftest import PortalTransport
from tests.specs import small_spec
from tuneforge.api.app import create_app
from tuneforge.api.rate_limit import RateLimited, RateLimiter
from tuneforge.api.services import keys as key_service
from tuneforge.api.settings import Settings

API = "/api/v1"
RATE, BURST = 0.5, 3


class Clock:
    """A monotonic clock the test moves forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def tight(db_url: str) -> Iterator[tuple[TestClient, Clock]]:
    """The app limited to 0.5 requests a second in bursts of 3, on a hand-moved clock."""
    settings = {"reconcile_interval_seconds": 0, "rate_limit_per_second": RATE}
    with make_client(db_url, rate_limit_burst=BURST, **settings) as client:
        clock = Clock()
        client.app.state.rate_limiter.clock = clock  # type: ignore[attr-defined]
        yield client, clock
    drop_keys(db_url)


def drop_keys(url: str) -> None:
    """Leave the session's PostgreSQL database keyless (later tests use it in open mode)."""
    if url.startswith("postgresql"):
        _truncate(url)


def keys(client: TestClient) -> dict[str, str]:
    db = client.app.state.db  # type: ignore[attr-defined]
    key_service.create_project(db, "a")
    return {
        "one": key_service.create_key(db, "a", "editor")[1],
        "two": key_service.create_key(db, "a", "viewer")[1],
        "worker": key_service.create_key(db, None, "worker")[1],
    }


def assert_limited(reply: httpx.Response, retry_after: int) -> None:
    assert reply.status_code == 429, reply.text
    assert reply.headers["retry-after"] == str(retry_after)
    error = reply.json()["error"]
    assert error["code"] == "rate_limited"
    assert "0.5 requests per second" in error["message"]
    assert f"retry in {retry_after} s" in error["message"]
    assert error["details"] == {"retry_after": retry_after}


def test_the_request_after_the_burst_gets_429_and_passes_after_retry_after(
    tight: tuple[TestClient, Clock],
) -> None:
    client, clock = tight
    k = keys(client)
    r = client.post(f"{API}/studies", json=small_spec("limited"), headers=bearer(k["one"]))
    assert r.status_code == 201, r.text
    study = r.json()["id"]
    for _ in range(BURST - 1):
        assert client.get(f"{API}/studies", headers=bearer(k["one"])).status_code == 200
    over = client.post(f"{API}/studies", json=small_spec("refused"), headers=bearer(k["one"]))
    assert_limited(over, 2)  # one token at 0.5/s: 2 s
    assert "API key" in over.json()["error"]["message"]
    # nothing of the refused request was stored; the other key and worker keys are unaffected
    for _ in range(BURST):
        r = client.get(f"{API}/studies", headers=bearer(k["two"]))
        assert r.status_code == 200
        assert [s["name"] for s in r.json()["studies"]] == ["limited"]
    for _ in range(3 * BURST):
        assert client.get(f"{API}/studies/{study}", headers=bearer(k["worker"])).status_code == 200
    clock.now += 1.0  # half a token: still refused, with the rest of the wait
    assert_limited(client.get(f"{API}/studies", headers=bearer(k["one"])), 1)
    clock.now += 1.0
    assert client.get(f"{API}/studies", headers=bearer(k["one"])).status_code == 200
    assert_limited(client.get(f"{API}/studies", headers=bearer(k["one"])), 2)


def test_open_mode_beyond_loopback_limits_per_client_address(db_url: str) -> None:
    """``--insecure`` on a public address: no keys, so each client address has a bucket."""
    settings = {"rate_limit_per_second": RATE, "rate_limit_burst": BURST, "host": "0.0.0.0"}
    with make_client(db_url, reconcile_interval_seconds=0, **settings) as client:
        clock = Clock()
        client.app.state.rate_limiter.clock = clock  # type: ignore[attr-defined]
        for _ in range(BURST):
            assert client.get(f"{API}/studies").status_code == 200
        over = client.get(f"{API}/studies")
        assert_limited(over, 2)
        assert "client address" in over.json()["error"]["message"]
        # the operations endpoints are never limited
        assert client.get("/healthz").status_code == 200
        clock.now += 2.0
        assert client.get(f"{API}/studies").status_code == 200


def test_open_mode_on_loopback_is_not_limited(tight: tuple[TestClient, Clock]) -> None:
    """The server reached only from its own machine, with no keys: one user, no limit."""
    client, _ = tight
    for _ in range(3 * BURST):
        assert client.get(f"{API}/studies").status_code == 200


def test_failed_authentication_is_limited_per_client_address(
    tight: tuple[TestClient, Clock],
) -> None:
    """Guessing keys costs tokens too; a valid key keeps its own bucket meanwhile."""
    client, _ = tight
    k = keys(client)
    for _ in range(BURST):
        r = client.get(f"{API}/studies", headers=bearer("tf_1_guessed"))
        assert r.status_code == 401
    assert_limited(client.get(f"{API}/studies", headers=bearer("tf_1_guessed")), 2)
    assert_limited(client.get(f"{API}/studies"), 2)  # no key at all: the same address
    assert client.get(f"{API}/studies", headers=bearer(k["one"])).status_code == 200


def test_a_rate_of_zero_turns_the_limit_off(sqlite_url: str) -> None:
    with make_client(sqlite_url, rate_limit_per_second=0, rate_limit_burst=1) as client:
        for _ in range(20):
            assert client.get(f"{API}/studies").status_code == 200


def test_the_embedded_server_is_not_limited() -> None:
    assert Settings(rate_limit_per_second=5).for_local_user().rate_limit_per_second == 0


def test_retry_after_rounds_the_wait_up() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=3.0, burst=1, clock=clock)
    limiter.take("k")
    with pytest.raises(RateLimited) as caught:
        limiter.take("k")
    assert caught.value.retry_after == 1  # a third of a second, rounded up
    clock.now += 1 / 3
    limiter.take("k")
    limiter = RateLimiter(rate=0.1, burst=2, clock=clock)
    limiter.take("k")
    limiter.take("k")
    clock.now += 2.5  # a quarter of a token: 7.5 s to go
    with pytest.raises(RateLimited) as caught:
        limiter.take("k")
    assert caught.value.retry_after == 8


class Recording(httpx.BaseTransport):
    """Passes every request on to the real app and keeps the status codes it answered."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        reply = self.inner.handle_request(request)
        self.statuses.append(reply.status_code)
        return reply


def test_the_sdk_waits_out_a_429(sqlite_url: str) -> None:
    """One request a second, no burst: the SDK's second call is refused once, waits the
    Retry-After second and succeeds, without the caller seeing the 429."""
    settings = Settings(db_url=sqlite_url, rate_limit_per_second=1, rate_limit_burst=1)
    app: Any = create_app(settings)
    key_service.create_project(app.state.db, "a")
    key = key_service.create_key(app.state.db, "a", "editor")[1]
    with anyio.from_thread.start_blocking_portal() as portal:
        transport = Recording(PortalTransport(app, portal))
        options: dict[str, Any] = {"retry": tuneforge.RetryPolicy(total_seconds=10)}
        with tuneforge.Client("http://sdk.test", key, transport=transport, **options) as sdk:
            study = sdk.create_study(small_spec("ride-through"))
            again = sdk.get_study(study.id)
    assert again.id == study.id
    assert transport.statuses.count(201) == 1
    assert 429 in transport.statuses and transport.statuses[-1] == 200
