"""The server's background reconciler.

Every ``reconcile_interval_seconds`` (or at once when woken) it:

- fails running trials whose lease ran out and queues their retries, so a dead
  worker never holds a slot for long;
- keeps each managed study's Celery tasks in flight: ``min(slots, work left)``
  minus the tasks already waiting, all derived from database state, so a lost
  message or a Redis restart only delays work;
- revokes the waiting tasks of paused or completed studies and queues the
  held-out evaluation when a managed study ends.

It is safe to run in several replicas: each study is planned inside its own
locked transaction, and tasks are sent only after that transaction commits.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select

from ..core.errors import TuneforgeError
from ..core.trials import TrialState
from .db.engine import Database
from .db.models import TrialRow
from .db.repository import get_study_row, spec_of, utcnow
from .queue import TaskQueue
from .services.lifecycle import reap_expired, refresh_study_state
from .services.managed import Plan, managed_study_ids, plan_dispatches
from .settings import Settings

log = logging.getLogger("tuneforge.scheduler")


def studies_with_expired_leases(db: Database) -> list[int]:
    with db.read() as session:
        rows = session.scalars(
            select(TrialRow.study_id)
            .where(
                TrialRow.state.in_([TrialState.ACTIVE.value, TrialState.STOPPING.value]),
                TrialRow.lease_expires_at < utcnow(),
            )
            .distinct()
        ).all()
        return list(rows)


def reap_study(db: Database, study_id: int) -> int:
    """Fail and retry the expired trials of one study; returns how many expired."""
    with db.write() as session:
        study = get_study_row(session, study_id, lock=True)
        spec = spec_of(study)
        now = utcnow()
        n = reap_expired(session, study, spec, now)
        if n:
            refresh_study_state(session, study, spec, now)
        return n


def execute(plan: Plan, queue: TaskQueue) -> None:
    """Send and revoke what a committed plan says; failures wait for the next pass."""
    for kind, study_id, task_id in plan.send:
        try:
            queue.send(kind, study_id, task_id)
        except Exception as exc:  # broker down: the dispatch expires and is replaced
            log.warning("could not send %s task for study %s: %s", kind, study_id, exc)
            return
    try:
        queue.revoke(plan.revoke)
    except Exception as exc:
        log.info("could not revoke %d tasks: %s", len(plan.revoke), exc)


def reconcile_once(
    db: Database, queue: TaskQueue | None = None, settings: Settings | None = None
) -> int:
    """One pass over expired leases and managed studies; returns trials expired."""
    settings = settings or Settings()
    total = 0
    for study_id in studies_with_expired_leases(db):
        try:
            total += reap_study(db, study_id)
        except TuneforgeError as exc:  # deleted meanwhile, or the database is busy
            log.info("reaper skipped study %s: %s", study_id, exc)
    if queue is None:
        return total
    for study_id in managed_study_ids(db):
        try:
            plan = plan_dispatches(
                db, study_id, settings.dispatch_ttl_seconds, settings.default_parallelism
            )
        except TuneforgeError as exc:
            log.info("planner skipped study %s: %s", study_id, exc)
            continue
        execute(plan, queue)
    return total


class Reconciler:
    """Runs :func:`reconcile_once` on a daemon thread until stopped; :meth:`wake` runs it now."""

    def __init__(self, db: Database, settings: Settings, queue: TaskQueue | None) -> None:
        self._db = db
        self._settings = settings
        self._queue = queue
        self._interval = settings.reconcile_interval_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneforge-reconciler", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                reconcile_once(self._db, self._queue, self._settings)
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("reconciler pass failed")
