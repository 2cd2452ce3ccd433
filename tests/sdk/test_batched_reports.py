"""``trial.report`` holds back reports at steps where the study's rule cannot decide (the
reply's ``next_decision_step``) and sends them with the next report that can be decided,
or before the trial ends. Sync and async clients against a live server; every request
goes through a transport that notes the measurement bodies it forwards."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal

import tuneforge
from tests.conftest import LiveServer
from tests.sdk.conftest import Synced, float_study

MAX = 27
ASHA = {
    "fidelity": {"name": "epochs", "min": 1, "max": MAX},
    "early_stopping": {"rule": "asha", "reduction_factor": 3, "keep_leader": True},
}


class Noted:
    """The measurement bodies sent; with ``older`` the replies lose ``next_decision_step``
    (what a server from before it answers)."""

    def __init__(self, older: bool) -> None:
        self.older = older
        self.bodies: list[dict[str, Any]] = []

    def request(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/measurements"):
            self.bodies.append(json.loads(request.content))

    def reply(self, request: httpx.Request, response: httpx.Response, content: bytes) -> Any:
        if self.older and request.url.path.endswith("/measurements") and response.is_success:
            body = json.loads(content)
            body.pop("next_decision_step")
            content = json.dumps(body).encode()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, content=content)

    @property
    def steps(self) -> list[int]:
        return [b["step"] for b in self.bodies]

    def earlier(self, i: int) -> list[int]:
        return [m["step"] for m in self.bodies[i].get("earlier", [])]


class NotingTransport(httpx.BaseTransport):
    def __init__(self, noted: Noted) -> None:
        self.noted = noted
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.noted.request(request)
        response = self.inner.handle_request(request)
        return self.noted.reply(request, response, response.read())  # type: ignore[no-any-return]


class AsyncNotingTransport(httpx.AsyncBaseTransport):
    def __init__(self, noted: Noted) -> None:
        self.noted = noted
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.noted.request(request)
        response = await self.inner.handle_async_request(request)
        return self.noted.reply(request, response, await response.aread())  # type: ignore[no-any-return]


Make = Callable[..., tuple[Any, Noted]]


@pytest.fixture(params=["sync", "async"])
def make(
    request: pytest.FixtureRequest, portal: BlockingPortal, sdk_live: LiveServer
) -> Iterator[Make]:
    """Builds clients on the live server: ``make(report_delay=..., older=False)``."""
    closers: list[Callable[[], Any]] = []

    def build(report_delay: float = 60.0, older: bool = False) -> tuple[Any, Noted]:
        noted = Noted(older)
        if request.param == "sync":
            client = tuneforge.Client(
                sdk_live.url, transport=NotingTransport(noted), report_delay=report_delay
            )
            closers.append(client.close)
            return client, noted
        inner = tuneforge.AsyncClient(
            sdk_live.url, transport=AsyncNotingTransport(noted), report_delay=report_delay
        )
        closers.append(lambda: portal.call(inner.aclose))
        return Synced(inner, portal), noted

    yield build
    for close in closers:
        close()


def stored_steps(trial: Any) -> list[int]:
    return [m.step for m in trial.refresh().data.measurements]


def test_an_asha_trial_sends_one_report_per_rung(make: Make, name: str) -> None:
    client, noted = make()
    trial = client.create_study(float_study(name, **ASHA)).suggest_one()
    for step in range(1, MAX):
        assert trial.report(step, loss=1.0 / step) is False
    assert noted.steps == [1, 3, 9]  # the rungs of 1..27: where ASHA decides
    assert [noted.earlier(i) for i in range(3)] == [[], [2], [4, 5, 6, 7, 8]]
    assert trial.held_reports == MAX - 1 - 9  # past the last rung nothing is decided
    trial.complete(loss=0.01)
    assert noted.steps == [1, 3, 9, MAX - 1]  # complete sent the held ones first
    assert noted.earlier(3) == list(range(10, MAX - 1))
    assert trial.held_reports == 0
    assert stored_steps(trial) == list(range(1, MAX))
    assert trial.refresh().state == "completed"


def test_report_delay_zero_sends_every_report(make: Make, name: str) -> None:
    client, noted = make(report_delay=0)
    trial = client.create_study(float_study(name, **ASHA)).suggest_one()
    for step in range(1, 11):
        trial.report(step, loss=1.0 / step)
    assert noted.steps == list(range(1, 11)) and all("earlier" not in b for b in noted.bodies)
    trial.complete(loss=0.1)


def test_a_server_without_next_decision_step_gets_every_report(make: Make, name: str) -> None:
    client, noted = make(older=True)
    trial = client.create_study(float_study(name, **ASHA)).suggest_one()
    for step in range(1, 11):
        trial.report(step, loss=1.0 / step)
    assert noted.steps == list(range(1, 11)) and all("earlier" not in b for b in noted.bodies)
    trial.complete(loss=0.1)
    assert noted.steps == list(range(1, 11))  # nothing was held back to send
    assert stored_steps(trial) == list(range(1, 11))


def test_held_reports_wait_at_most_report_delay(make: Make, name: str) -> None:
    client, noted = make(report_delay=0.2)
    trial = client.create_study(float_study(name)).suggest_one()  # rule none: never decides
    trial.report(1, loss=1.0)
    trial.report(2, loss=0.9)
    assert noted.steps == [1] and trial.held_reports == 1
    time.sleep(0.3)
    trial.report(3, loss=0.8)
    assert noted.steps == [1, 3] and noted.earlier(1) == [2]
    assert stored_steps(trial) == [1, 2, 3]
    trial.complete(loss=0.8)


def test_refresh_sends_the_held_reports_first(make: Make, name: str) -> None:
    client, noted = make()
    trial = client.create_study(float_study(name)).suggest_one()
    trial.report(1, loss=1.0)
    trial.report(2, loss=0.5)
    assert noted.steps == [1] and trial.held_reports == 1
    assert stored_steps(trial) == [1, 2] and noted.steps == [1, 2]
    trial.complete(loss=0.5)


def test_a_step_that_does_not_follow_the_held_ones_sends_them_first(make: Make, name: str) -> None:
    client, noted = make()
    trial = client.create_study(float_study(name)).suggest_one()
    for step in (1, 5, 6):
        trial.report(step, loss=1.0)
    trial.report(4, loss=0.5)  # below the held steps: they cannot be its earlier ones
    assert noted.steps == [1, 6, 4] and noted.earlier(1) == [5]
    trial.complete(loss=0.5)
    assert stored_steps(trial) == [1, 4, 5, 6]


def test_fail_stop_and_the_end_of_a_with_block_send_held_reports(make: Make, name: str) -> None:
    client, _ = make()
    study = client.create_study(float_study(name, max_trials=3, retries={"max_retries": 0}))
    failed = study.suggest_one()
    for step in (1, 2, 3):
        failed.report(step, loss=1.0)
    failed.fail("out of disk", retry=False)
    assert stored_steps(failed) == [1, 2, 3]

    stopped = study.suggest_one()
    for step in (1, 2):
        stopped.report(step, loss=1.0)
    stopped.stop()
    assert stored_steps(stopped) == [1, 2]
    assert stopped.report(3, loss=1.0) is True  # sent at once: its reply says stop

    with pytest.raises(RuntimeError), study.suggest_one() as trial:
        for step in (1, 2, 3, 4):
            trial.report(step, loss=1.0)
        raise RuntimeError("training crashed")
    assert stored_steps(trial) == [1, 2, 3, 4]
    assert trial.refresh().state == "failed"
