"""What the sync and async clients share and that needs no network: configuration,
request headers, the retry policy, reading replies into models or exceptions,
and building study specs. Only sending a request differs between the two."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ._calls import Call, RawReply
from ._version import __version__
from .embedded import EmbeddedServer
from .errors import (
    ConnectionFailed,
    NotFound,
    NoTrialAvailable,
    ServerError,
    error_from_reply,
)
from .models import DatasetData, DatasetPage, StudyData, StudyPage, TrialData

T = TypeVar("T")

#: Replies that mean "not applied, try again later" (or a gateway that lost the server).
RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
#: Transport errors raised before the request left this machine: safe to resend anything.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by a time budget per call.

    Until a client has had its first reply from the server, a call gives up
    after ``connect_seconds`` (default 4 s): when nothing answers at the URL
    (no server started, a wrong port, a typo), :class:`~tuneforge.ConnectionFailed`
    says so quickly. Once the server has answered, every call gets the patient
    ``total_seconds`` (default 60 s), which outlasts a server restart, so a
    worker loses nothing when the server goes away for a moment.
    ``total_seconds=0`` turns retries off.
    """

    total_seconds: float = 60.0
    initial_delay: float = 0.2
    max_delay: float = 2.0
    #: Retry budget of a call before the client's first reply (capped by ``total_seconds``).
    connect_seconds: float = 4.0

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (jittered between half and full)."""
        ceiling = min(self.max_delay, self.initial_delay * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, min(retry_after or 0.0, self.max_delay))

    def budget(self, reached: bool) -> float:
        """The seconds a call may spend retrying: the full budget once the server has replied."""
        return self.total_seconds if reached else min(self.connect_seconds, self.total_seconds)


class Attempts:
    """The attempts of one call: decides after each outcome whether and when to retry.

    ``reached`` says whether the client has had a reply before this call; it
    becomes true as soon as any reply (even an error status) arrives.
    """

    def __init__(self, policy: RetryPolicy, call: Call[Any], reached: bool = True) -> None:
        self.policy = policy
        self.call = call
        self.reached = reached
        self.count = 0
        self.started = time.monotonic()

    def next_delay(self, outcome: httpx.Response | httpx.TransportError) -> float | None:
        """The wait before the next attempt, or ``None`` to stop with this outcome."""
        self.count += 1
        if isinstance(outcome, httpx.Response):
            self.reached = True
        if not self._retryable(outcome):
            return None
        delay = self.policy.backoff(self.count, _retry_after(outcome))
        if self.elapsed + delay > self.policy.budget(self.reached):
            return None
        return delay

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _retryable(self, outcome: httpx.Response | httpx.TransportError) -> bool:
        if isinstance(outcome, NOT_SENT):
            return True
        if isinstance(outcome, httpx.TransportError):
            return self.call.idempotent
        if outcome.status_code == 429:
            return True
        return outcome.status_code in RETRY_STATUSES and self.call.idempotent


def _retry_after(outcome: httpx.Response | httpx.TransportError) -> float | None:
    if isinstance(outcome, httpx.TransportError):
        return None
    try:
        return float(outcome.headers.get("retry-after", ""))
    except ValueError:
        return None


def default_client_id() -> str:
    """``host:pid:random`` — distinct for every client instance, readable in the trial list."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class BaseClient:
    """Configuration and reply handling shared by :class:`Client` and :class:`AsyncClient`."""

    def __init__(
        self,
        url: str | None,
        api_key: str | None,
        *,
        client_id: str | None,
        timeout: float | httpx.Timeout | None,
        retry: RetryPolicy,
        in_process: bool,
        report_delay: float = 2.0,
    ) -> None:
        if isinstance(report_delay, bool) or not report_delay >= 0:
            raise ValueError(f"report_delay must be a number of seconds >= 0, got {report_delay!r}")
        self._server: EmbeddedServer | None = None
        #: Longest a trial holds a report back (see ``Trial.report``); 0: never.
        self.report_delay = float(report_delay)
        #: Requests go to a transport in this process (tests), not over the network.
        self.in_process = in_process
        self.url = self._resolve_url(url, in_process)
        self.api_key = api_key if api_key is not None else os.environ.get("TUNEFORGE_API_KEY")
        self.client_id = client_id or default_client_id()
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retry
        #: Whether the server has answered this client yet (see ``RetryPolicy.connect_seconds``).
        self.reached = False
        self._calls = itertools.count(1)

    def call_client_id(self) -> str:
        """A client id for one ``suggest_one`` call of its own, ``<client_id>#<n>``: calls
        running at the same time (asyncio tasks sharing this client) get distinct trials,
        and a retry of one call still gets its own trial back."""
        return f"{self.client_id[:240]}#{next(self._calls)}"

    def _resolve_url(self, url: str | None, in_process: bool) -> str:
        url = url or os.environ.get("TUNEFORGE_URL") or os.environ.get("TUNEFORGE_SERVER_URL")
        if url:
            return url.rstrip("/")
        if in_process:  # a transport was given: the host name is only a label
            return "http://tuneforge.invalid"
        self._server = EmbeddedServer().start()
        return self._server.url

    def _adopt(self, server: EmbeddedServer) -> None:
        """Stop ``server`` when this client closes (used by :func:`tuneforge.local`)."""
        self._server = server

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def embedded(self) -> bool:
        """Whether this client runs its own in-process server."""
        return self._server is not None

    def _http_options(self) -> dict[str, Any]:
        headers = {"user-agent": f"tuneforge-python/{__version__}", "accept": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return {"base_url": self.url + API_PREFIX, "headers": headers, "timeout": self.timeout}

    def _attempts(self, call: Call[Any]) -> Attempts:
        return Attempts(self.retry, call, self.reached)

    def _result(
        self, call: Call[T], outcome: httpx.Response | httpx.TransportError, attempts: Attempts
    ) -> T:
        """The parsed reply of the last attempt, or the matching exception."""
        if isinstance(outcome, httpx.TransportError):
            self.reached = self.reached or attempts.reached
            raise self._connection_failed(call, outcome, attempts) from outcome
        self.reached = True
        status = outcome.status_code
        if status >= 400:
            if status == call.done_if_retried and attempts.count > 1:
                return call.parse(None)
            raise error_from_reply(status, _json_or_none(outcome), outcome.text, attempts.count)
        if call.raw:
            return call.parse(RawReply(outcome.content, dict(outcome.headers)))
        try:
            return call.parse(outcome.json() if outcome.content else None)
        except ValueError:  # not JSON, or not the shape docs/api.md fixes (a proxy's page?)
            raise ServerError(
                f"{call.method} {call.path}: unexpected reply {outcome.text[:200]!r}",
                status=status,
                code="unexpected_reply",
                attempts=attempts.count,
            ) from None

    def _connection_failed(
        self, call: Call[Any], outcome: httpx.TransportError, attempts: Attempts
    ) -> ConnectionFailed:
        """The error for a call that got no reply: a hint when the server never answered."""
        last = f"{type(outcome).__name__}: {outcome}"
        if attempts.reached:
            message = (
                f"{call.method} {self.url}{API_PREFIX}{call.path}: no reply after "
                f"{attempts.count} attempt(s) in {attempts.elapsed:.1f} s ({last})"
            )
        else:
            message = (
                f"nothing answers at {self.url}: no reply in {attempts.elapsed:.1f} s "
                f"({attempts.count} attempt(s) within RetryPolicy.connect_seconds="
                f"{self.retry.budget(False):g}; {last}). Is `tuneforge serve` running "
                "there? Pass the server's URL, or set TUNEFORGE_URL"
            )
        return ConnectionFailed(message, code="connection_failed", attempts=attempts.count)

    @staticmethod
    def _only_dataset(page: DatasetPage, name: str) -> DatasetData:
        if not page.datasets:
            raise NotFound(f"no dataset named {name!r}", status=404, code="not_found")
        return page.datasets[0]

    @staticmethod
    def _only(page: StudyPage, name: str) -> StudyData:
        if not page.studies:
            raise NotFound(f"no study named {name!r}", status=404, code="not_found")
        return page.studies[0]

    def __repr__(self) -> str:
        mode = " embedded" if self.embedded else ""
        return f"<{type(self).__name__} {self.url}{mode} client_id={self.client_id!r}>"


def request_options(call: Call[Any]) -> dict[str, Any]:
    """The ``httpx`` request arguments of ``call`` (a JSON or a binary body)."""
    options: dict[str, Any] = {"params": call.params}
    if call.timeout is not None:
        options["timeout"] = call.timeout
    if call.content is not None:
        options["content"] = call.content
        options["headers"] = {"content-type": "application/octet-stream"}
    else:
        options["json"] = call.json
    return options


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def landed(trial: TrialData, body: Mapping[str, Any]) -> bool:
    """Whether ``trial`` shows that a complete / fail request with ``body`` already took effect.

    A retried request gets 409 when its first attempt landed but the reply was lost.
    """
    if "retry" in body:  # a fail request
        return trial.state == "failed" and trial.reason == (body.get("reason") or "failed")
    if body.get("infeasible"):
        return trial.state == "infeasible" and trial.reason == (body.get("reason") or "infeasible")
    return trial.state in ("completed", "pruned") and _same_values(trial.values, body["values"])


def _same_values(stored: Mapping[str, float] | None, sent: Mapping[str, float]) -> bool:
    if stored is None or set(stored) != set(sent):
        return False
    return all(math.isclose(float(stored[k]), float(v), rel_tol=1e-12) for k, v in sent.items())


def metric_values(
    values: Mapping[str, float] | None, metrics: Mapping[str, float]
) -> dict[str, float]:
    """Merge a positional mapping and keyword metrics (``complete({"a": 1}, b=2)``)."""
    merged = {**(values or {}), **metrics}
    if not merged:
        raise ValueError("give at least one metric value, e.g. complete(accuracy=0.93)")
    return merged


def study_spec(spec: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ``POST /studies`` body from a dict and/or keyword fields (keywords win).

    Shorthands: ``metrics={"accuracy": "maximize"}`` and
    ``parameters={"lr": {"type": "float", "low": 1e-4, "high": 0.1}}``.
    """
    body = {**(spec or {}), **{k: v for k, v in fields.items() if v is not None}}
    if isinstance(body.get("metrics"), Mapping):
        body["metrics"] = [{"name": n, "goal": g} for n, g in body["metrics"].items()]
    if isinstance(body.get("parameters"), Mapping):
        body["parameters"] = [{"name": n, **p} for n, p in body["parameters"].items()]
    for key in ("name", "parameters", "metrics"):
        if key not in body:
            raise ValueError(f"a study spec needs {key!r}{_misspelled(key, body)}")
    return body


def _misspelled(key: str, body: Mapping[str, Any]) -> str:
    """``"; 'paramters' is not a spec field: did you mean 'parameters'?"`` or ``""``."""
    import difflib

    close = difflib.get_close_matches(key, [str(k) for k in body], n=1, cutoff=0.75)
    return f"; {close[0]!r} is not a spec field: did you mean {key!r}?" if close else ""


def read_spec_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a study spec from ``.yaml`` / ``.yml`` / ``.json``."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() in (".yaml", ".yml"):
        import yaml  # only needed here; keeps `import tuneforge` light

        data = yaml.safe_load(text)
    elif file.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"{file}: study files must end in .yaml, .yml or .json")
    if not isinstance(data, dict):
        raise ValueError(f"{file}: a study spec must be a mapping at the top level")
    return data


class SuggestWait:
    """Polling for ``suggest_one`` while every slot is busy: growing pauses, a deadline."""

    def __init__(self, timeout: float | None) -> None:
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.delay = 0.05

    def next_delay(self, study_state: str) -> float:
        """How long to sleep before asking again; raises when there is nothing to wait for:
        the study is completed, or the deadline passed while every slot was busy or the
        study stayed paused (a paused study may be resumed, so it is waited on)."""
        if study_state not in ("active", "paused"):
            raise NoTrialAvailable(f"the study is {study_state}", study_state=study_state)
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            why = "the study stayed paused" if study_state == "paused" else "no trial became free"
            raise NoTrialAvailable(f"{why} until the timeout", study_state=study_state)
        self.delay = min(self.delay * 2, 1.0)
        if self.deadline is None:
            return self.delay
        return min(self.delay, self.deadline - now)
