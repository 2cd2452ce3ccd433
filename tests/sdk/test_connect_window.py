"""The first-contact window: a client fails fast when nothing answers at its URL, and
retries patiently once the server has answered it (``RetryPolicy.connect_seconds``)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

import tuneforge
from tests.conftest import LiveServer, free_port
from tests.sdk.conftest import float_study
from tuneforge import _calls as calls
from tuneforge._core import Attempts

#: The patient budget is far longer than the first-contact window in these tests.
PATIENT = tuneforge.RetryPolicy(
    total_seconds=60, connect_seconds=0.5, initial_delay=0.05, max_delay=0.2
)


def refused() -> httpx.ConnectError:
    return httpx.ConnectError("refused", request=httpx.Request("GET", "http://x"))


def test_the_window_applies_until_a_reply_arrives() -> None:
    policy = tuneforge.RetryPolicy(total_seconds=60, connect_seconds=0)
    call = calls.get_study(1)
    assert Attempts(policy, call, reached=False).next_delay(refused()) is None
    assert Attempts(policy, call, reached=True).next_delay(refused()) is not None
    within = Attempts(policy, call, reached=False)
    assert within.next_delay(httpx.Response(503)) is not None  # a reply: the server is there
    assert within.reached and within.next_delay(refused()) is not None


def test_the_window_never_exceeds_the_total_budget() -> None:
    assert tuneforge.RetryPolicy(total_seconds=1, connect_seconds=4).budget(False) == 1
    assert tuneforge.RetryPolicy(total_seconds=0).budget(False) == 0
    assert tuneforge.RetryPolicy().budget(True) == 60


def check_fast_failure(error: tuneforge.ConnectionFailed, url: str, spent: float) -> None:
    # without the window the patient 60 s budget would apply
    assert spent < PATIENT.total_seconds / 2
    assert error.attempts >= 2 and error.status is None
    message = str(error)
    assert url in message and "connect_seconds=0.5" in message
    assert "tuneforge serve" in message and "TUNEFORGE_URL" in message


def test_client_fails_fast_on_a_closed_port() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with (
        tuneforge.Client(url, retry=PATIENT) as client,
        pytest.raises(tuneforge.ConnectionFailed) as info,
    ):
        client.get_study(1)
    check_fast_failure(info.value, url, time.monotonic() - started)
    assert not client.reached


def test_async_client_fails_fast_on_a_closed_port() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def call() -> None:
        async with tuneforge.AsyncClient(url, retry=PATIENT) as client:
            await client.get_study(1)

    started = time.monotonic()
    with pytest.raises(tuneforge.ConnectionFailed) as info:
        asyncio.run(call())
    check_fast_failure(info.value, url, time.monotonic() - started)


def restart_soon(server: LiveServer, pause: float) -> threading.Thread:
    """Stop ``server`` now and start it again on its port after ``pause`` seconds."""
    server.stop()

    def start() -> None:
        time.sleep(pause)
        server.start()

    thread = threading.Thread(target=start)
    thread.start()
    return thread


def test_an_outage_after_first_contact_is_retried(sqlite_url: str, name: str) -> None:
    server = LiveServer(sqlite_url).start()
    try:
        with tuneforge.Client(server.url, retry=PATIENT) as client:
            study = client.create_study(float_study(name))
            assert client.reached
            # down for longer than the first-contact window (the pause plus a restart)
            thread = restart_soon(server, pause=1.0)
            assert client.get_study(study.id).name == name
            thread.join()

            async def again() -> str:
                async with tuneforge.AsyncClient(server.url, retry=PATIENT) as aclient:
                    await aclient.get_study(study.id)
                    inner = restart_soon(server, pause=1.0)
                    got = await aclient.get_study(study.id)
                    inner.join()
                    return got.name

            assert asyncio.run(again()) == name
    finally:
        server.stop()
