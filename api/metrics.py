"""Prometheus metrics of one app instance (a registry per app, so tests stay apart).

Series:

- ``tuneforge_http_requests_total`` / ``tuneforge_http_request_seconds``: per route
  template, method (and status).
- ``tuneforge_suggest_seconds{algorithm}``: time spent in the suggest service,
  labelled by the study's configured algorithm (see :mod:`tuneforge.api.suggest_guard`).
- ``tuneforge_study_lock_wait_seconds`` / ``tuneforge_study_lock_hold_seconds``
  (PostgreSQL): how long a transaction waited for a study's row lock and held it, to
  its commit or rollback. Writes to one study (suggest's claim, complete, fail) take
  that lock one at a time, so a busy study's writes per second cannot exceed one over
  the mean hold.
- ``tuneforge_suggest_phase_seconds{phase}``: the phases of each shared fit of a
  model-based study (``api/services/suggest_fit.py``): ``snapshot`` (the reads the
  algorithm starts from), ``fit`` (the algorithm, in the server or its fit process)
  and ``claim`` (the locked write of the new trials); one observation per phase and
  batch that claimed. A suggest waits for the batch running when it came, then for
  its own, so these say where a model suggest's time goes.
- ``tuneforge_trials{state}``, ``tuneforge_active_leases``,
  ``tuneforge_dispatch_queue_depth{kind}``: read from the database at scrape time
  by :class:`DatabaseCollector` with three aggregate queries (a ``GROUP BY state``
  over the trials table; a count of running trials with an unexpired lease, which
  the ``(state, lease_expires_at)`` index serves; a count of unclaimed dispatches).
  Their cost grows with the number of stored trials: about 20 ms per 100k trials
  on PostgreSQL on a small 2-core machine; scrape every 15 s or more.
  ``tuneforge_metrics_database_up`` is 0 when those queries failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.trials import TrialState
from .db.engine import Database
from .db.models import DispatchRow, TrialRow
from .db.repository import utcnow

log = logging.getLogger("tuneforge.metrics")
DISPATCH_KINDS = ("trial", "evaluate")
_LEASED_STATES = (TrialState.ACTIVE.value, TrialState.STOPPING.value)
#: The metrics of the app serving the current request (set by :meth:`Metrics.middleware`).
current_metrics: ContextVar[Metrics | None] = ContextVar("tuneforge_metrics", default=None)


class DatabaseCollector(Collector):
    """Gauges computed from the database at scrape time (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        trials, leases, queue, up = self._families()
        try:
            with self.db.read() as session:
                by_state = dict(
                    session.execute(
                        select(TrialRow.state, func.count()).group_by(TrialRow.state)
                    ).all()
                )
                active = session.scalar(
                    select(func.count())
                    .select_from(TrialRow)
                    .where(TrialRow.state.in_(_LEASED_STATES), TrialRow.lease_expires_at > utcnow())
                )
                waiting = dict(
                    session.execute(
                        select(DispatchRow.kind, func.count())
                        .where(DispatchRow.claimed_at.is_(None))
                        .group_by(DispatchRow.kind)
                    ).all()
                )
        except Exception:
            log.warning("metrics: database counts unavailable", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        for state in TrialState:
            trials.add_metric([state.value], by_state.get(state.value, 0))
        leases.add_metric([], active or 0)
        for kind in sorted({*DISPATCH_KINDS, *waiting}):
            queue.add_metric([kind], waiting.get(kind, 0))
        up.add_metric([], 1)
        yield from (trials, leases, queue, up)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("tuneforge_trials", "Stored trials by state.", labels=["state"]),
            GaugeMetricFamily(
                "tuneforge_active_leases", "Running trials whose lease has not expired."
            ),
            GaugeMetricFamily(
                "tuneforge_dispatch_queue_depth",
                "Managed-study tasks sent to the workers and not yet claimed, by kind.",
                labels=["kind"],
            ),
            GaugeMetricFamily(
                "tuneforge_metrics_database_up", "1 when the database counts above were read."
            ),
        )


def route_template(scope: Scope) -> str:
    """The matched route's full path template (``/api/v1/studies/{study_id}``).

    Routes of an included router know only their own path (``/studies/{study_id}``); the
    prefix is the leading segments of the request path that the template does not cover.
    """
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str):
        return "unmatched"
    actual = scope.get("path", "").strip("/").split("/")
    own = template.strip("/").split("/") if template.strip("/") else []
    prefix = actual[: max(0, len(actual) - len(own))]
    return "/" + "/".join([*prefix, *own]) if (prefix or own) else "/"


class Metrics:
    """The app's registry; with ``db``, also the database gauges of :class:`DatabaseCollector`."""

    def __init__(self, db: Database | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tuneforge_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tuneforge_http_request_seconds",
            "HTTP request latency by route template.",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.suggest_latency = Histogram(
            "tuneforge_suggest_seconds",
            "Time spent computing suggestions, by the study's algorithm.",
            ["algorithm"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        lock_buckets = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
        self.lock_wait = Histogram(
            "tuneforge_study_lock_wait_seconds",
            "Time a transaction waited for a study row lock (PostgreSQL).",
            registry=self.registry,
            buckets=lock_buckets,
        )
        self.lock_hold = Histogram(
            "tuneforge_study_lock_hold_seconds",
            "Time a transaction held a study row lock, to its commit or rollback (PostgreSQL).",
            registry=self.registry,
            buckets=lock_buckets,
        )
        self.suggest_phase = Histogram(
            "tuneforge_suggest_phase_seconds",
            "Phases of a model suggest's shared fit: snapshot, fit and claim; stale: an"
            " attempt whose claim found its snapshot stale (its fit thrown away).",
            ["phase"],
            registry=self.registry,
            buckets=lock_buckets,
        )
        self.spare_points = Counter(
            "tuneforge_spare_points",
            "Spare points of busy TPE studies: fitted, taken and old (dropped as too old for"
            " the history).",
            ["event"],
            registry=self.registry,
        )
        if db is not None:
            self.registry.register(DatabaseCollector(db))
            db.lock_observer = self.observe_study_lock
            db.phase_observer = self.observe_suggest_phase
            db.spare_observer = self.observe_spare_points

    def observe_study_lock(self, waited: float, held: float) -> None:
        """Record one study row lock: seconds waited for it and held."""
        self.lock_wait.observe(waited)
        self.lock_hold.observe(held)

    def observe_suggest_phase(self, phase: str, seconds: float) -> None:
        """Record one phase (``snapshot``, ``fit``, ``claim``, or ``stale``: a thrown-away
        attempt) of a model suggest's batch."""
        self.suggest_phase.labels(phase).observe(seconds)

    def observe_spare_points(self, event: str, points: int) -> None:
        """Count ``points`` spare points of one ``event`` (``fitted``, ``taken``, ``old``)."""
        self.spare_points.labels(event).inc(points)


class StatusNote:
    """An ASGI ``send`` that notes the response status as it passes (500 until a
    response starts: the application raised before answering)."""

    def __init__(self, send: Send) -> None:
        self.status = 500
        self._send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        await self._send(message)


class MetricsMiddleware:
    """Pure ASGI middleware: times each request and counts it by route template, method
    and status (500 when the application raised), and makes :data:`current_metrics`
    this app's :class:`Metrics` while the request runs."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        noted = StatusNote(send)
        token = current_metrics.set(self.metrics)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, noted)
        finally:
            current_metrics.reset(token)
            template = route_template(scope)
            method = str(scope["method"])
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - start)
            self.metrics.requests.labels(template, method, str(noted.status)).inc()
