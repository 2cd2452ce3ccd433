"""Retries, error mapping and configuration of the shared client core.

Faults are injected in the transport (a reply lost after the real server
applied the request, a gateway 503), never by faking the server.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest

import tuneforge
from tests.conftest import LiveServer, free_port
from tests.sdk.conftest import float_study
from tuneforge.errors import error_from_reply

QUICK = tuneforge.RetryPolicy(total_seconds=5, initial_delay=0.01, max_delay=0.05)


class Faulty(httpx.BaseTransport):
    """Passes requests to the real server, except the first ``times`` whose path ends
    with ``suffix``: those are sent and their reply lost (``forward``), or dropped
    before sending, or answered with a gateway ``status``."""

    def __init__(
        self, suffix: str, *, times: int = 1, forward: bool = True, status: int | None = None
    ) -> None:
        self.inner = httpx.HTTPTransport()
        self.suffix, self.times, self.forward, self.status = suffix, times, forward, status
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.times > 0 and request.url.path.endswith(self.suffix):
            self.times -= 1
            if self.status is not None:
                return httpx.Response(self.status, text="bad gateway")
            if self.forward:
                self.inner.handle_request(request).read()
            raise httpx.ReadError("connection reset (injected)", request=request)
        return self.inner.handle_request(request)


def faulty_client(server: LiveServer, transport: Faulty, **kw: Any) -> tuneforge.Client:
    return tuneforge.Client(server.url, transport=transport, retry=QUICK, **kw)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, tuneforge.BadRequest),
        (401, tuneforge.Unauthorized),
        (403, tuneforge.Forbidden),
        (404, tuneforge.NotFound),
        (409, tuneforge.Conflict),
        (413, tuneforge.PayloadTooLarge),
        (422, tuneforge.InvalidSpec),
        (429, tuneforge.RateLimited),
        (500, tuneforge.ServerError),
        (503, tuneforge.ServerError),
        (418, tuneforge.BadRequest),
    ],
)
def test_each_status_has_its_exception(status: int, cls: type) -> None:
    body = {"error": {"code": "c", "message": "m", "details": {"field": "f"}}}
    error = error_from_reply(status, body, "", attempts=3)
    assert type(error) is cls and isinstance(error, tuneforge.TuneforgeError)
    assert (error.status, error.code, error.message, error.attempts) == (status, "c", "m", 3)
    assert error.details == {"field": "f"} and str(error) == f"{status} c: m"


def test_a_reply_that_is_not_json_still_maps() -> None:
    error = error_from_reply(502, None, "<html>bad gateway</html>")
    assert isinstance(error, tuneforge.ServerError) and error.code == "http_502"
    assert "bad gateway" in error.message


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = tuneforge.RetryPolicy(initial_delay=0.1, max_delay=1.0)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (8, 1.0)]:
        delays = {policy.backoff(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1
    assert policy.backoff(1, retry_after=0.7) == 0.7


def test_connection_refused_is_connection_failed_after_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    policy = tuneforge.RetryPolicy(total_seconds=0.3, initial_delay=0.02, max_delay=0.05)
    started = time.monotonic()
    with (
        tuneforge.Client(url, retry=policy) as client,
        pytest.raises(tuneforge.ConnectionFailed) as info,
    ):
        client.get_study(1)
    assert info.value.attempts > 2 and info.value.status is None
    assert time.monotonic() - started < 3

    async def run() -> None:
        async with tuneforge.AsyncClient(url, retry=policy) as client:
            await client.get_study(1)

    with pytest.raises(tuneforge.ConnectionFailed) as async_info:
        asyncio.run(run())
    assert async_info.value.attempts > 2 and async_info.value.code == "connection_failed"


def test_lost_complete_reply_is_success(sdk_live: LiveServer, name: str) -> None:
    transport = Faulty("/complete")
    with faulty_client(sdk_live, transport) as client:
        (trial,) = client.create_study(float_study(name)).suggest()
        trial.complete(loss=0.25)  # lands, reply lost, retry gets 409, GET shows our values
    assert trial.state == "completed" and trial.values == {"loss": 0.25}
    assert [r.method for r in transport.seen[-3:]] == ["POST", "POST", "GET"]


def test_lost_fail_and_delete_replies_are_success(sdk_live: LiveServer, name: str) -> None:
    with faulty_client(sdk_live, Faulty("/fail")) as client:
        study = client.create_study(float_study(name))
        (trial,) = study.suggest()
        assert trial.fail("node lost", retry=False).state == "failed"
    with faulty_client(sdk_live, Faulty(f"/studies/{study.id}")) as client:
        client.get_study(study.id).delete()  # lands, reply lost, retry gets 404: done
        with pytest.raises(tuneforge.NotFound):
            client.get_study(study.id)


def test_a_conflict_with_other_values_is_raised(sdk_live: LiveServer, name: str) -> None:
    transport = Faulty("/complete", forward=False)
    with faulty_client(sdk_live, transport) as client:
        (trial,) = client.create_study(float_study(name)).suggest()
        with tuneforge.Client(sdk_live.url) as other:
            other.get_study(name).trial(trial.number).complete(loss=9.0)
        with pytest.raises(tuneforge.Conflict) as info:
            trial.complete(loss=0.25)
    assert info.value.attempts == 2


def test_lost_suggest_reply_returns_the_same_trial(sdk_live: LiveServer, name: str) -> None:
    with faulty_client(sdk_live, Faulty("/suggest")) as client:
        study = client.create_study(float_study(name))
        (trial,) = study.suggest()
        active = list(study.trials(state="active"))
    assert [t.number for t in active] == [trial.number] == [0]


def test_create_is_retried_only_when_it_is_idempotent(sdk_live: LiveServer, name: str) -> None:
    with (
        faulty_client(sdk_live, Faulty("/studies")) as client,
        pytest.raises(tuneforge.ConnectionFailed) as info,
    ):
        client.create_study(float_study(name))
    assert info.value.attempts == 1
    with faulty_client(sdk_live, Faulty("/studies")) as client:
        assert client.create_study(float_study(name), if_exists="return").name == name


def test_gateway_errors_are_retried_for_safe_calls_only(sdk_live: LiveServer, name: str) -> None:
    with faulty_client(sdk_live, Faulty("/studies", status=503, times=1)) as client:
        with pytest.raises(tuneforge.ServerError) as info:
            client.create_study(float_study(name))
        assert info.value.status == 503 and info.value.attempts == 1
    transport = Faulty("/studies", status=502, times=2)
    with faulty_client(sdk_live, transport) as client:
        assert isinstance(client.list_studies(), list)
    assert len(transport.seen) == 3


def test_lost_reply_is_recovered_by_the_async_client_too(sdk_live: LiveServer, name: str) -> None:
    class AsyncFaulty(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner, self.lost = httpx.AsyncHTTPTransport(), False

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            reply = await self.inner.handle_async_request(request)
            if request.url.path.endswith("/complete") and not self.lost:
                self.lost = True
                await reply.aread()
                raise httpx.ReadError("connection reset (injected)", request=request)
            return reply

    async def run() -> tuneforge.AsyncTrial:
        async with tuneforge.AsyncClient(
            sdk_live.url, transport=AsyncFaulty(), retry=QUICK
        ) as client:
            study = await client.create_study(float_study(name))
            async with study.suggest_one() as trial:
                await trial.complete(loss=0.5)
            return trial

    assert asyncio.run(run()).state == "completed"


def test_url_key_and_client_id_defaults(
    sdk_live: LiveServer, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEFORGE_URL", sdk_live.url)
    monkeypatch.setenv("TUNEFORGE_API_KEY", "s3cret")
    transport = Faulty("never")
    with tuneforge.Client(transport=transport) as client:
        assert client.url == sdk_live.url and not client.embedded
        client.create_study(float_study(name)).suggest()
    assert transport.seen[0].headers["authorization"] == "Bearer s3cret"
    assert re.fullmatch(r"[^:]+:\d+:[0-9a-f]{6}", client.client_id)
    with tuneforge.Client(sdk_live.url) as another:
        assert another.client_id != client.client_id
    suggest = next(r for r in transport.seen if r.url.path.endswith("/suggest"))
    assert client.client_id.encode() in suggest.content
