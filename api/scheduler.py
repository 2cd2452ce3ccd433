"""The server's background reconciler.

Every ``reconcile_interval_seconds`` (or at once when woken) it:

- fails running trials whose lease ran out and queues their retries, so a dead
  worker never holds a slot for long;
- keeps each managed study's Celery tasks in flight: ``min(slots, work left)``
  minus the tasks already waiting, all derived from database state, so a lost
  message or a Redis restart only delays work: a task no worker claimed within
  ``dispatch_claim_seconds`` that the broker no longer holds is sent again;
- revokes the waiting tasks of paused or completed studies and queues the
  held-out evaluation when a managed study ends.

It is safe to run in several replicas: each study is planned inside its own
locked transaction, and tasks are sent only after that transaction commits.

Between passes, a managed trial that ends (complete, fail, pruned) has its study
planned at once by :meth:`Reconciler.after_trial_ended`, run after the request's
commit, so a worker does not wait for the next pass to get its next trial.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from sqlalchemy import select

from ..core.errors import TuneforgeError
from ..core.trials import TrialState
from .db.engine import Database
from .db.models import TrialRow
from .db.repository import get_study_row, spec_of, utcnow
from .queue import TaskQueue
from .services.lifecycle import reap_expired, refresh_study_state
from .services.managed import LossCheck, Plan, managed_study_ids, plan_dispatches
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


def loss_check(queue: TaskQueue, settings: Settings) -> LossCheck:
    """What the broker still holds, asked once per pass (``held`` None: it cannot say)."""
    held_ids = getattr(queue, "held_task_ids", None)
    held: frozenset[str] | None = None
    if held_ids is not None:
        try:
            found = held_ids()
        except Exception as exc:  # broker down: nothing can be sent this pass anyway
            log.info("could not list the broker's tasks: %s", exc)
            found = None
        held = None if found is None else frozenset(found)
    return LossCheck(settings.dispatch_claim_seconds, held)


def reconcile_once(
    db: Database,
    queue: TaskQueue | None = None,
    settings: Settings | None = None,
    managed: Iterable[int] | None = None,
) -> int:
    """One pass over expired leases and managed studies (``managed``: their ids when the
    caller has read them); returns trials expired."""
    settings = settings or Settings()
    total = 0
    for study_id in studies_with_expired_leases(db):
        try:
            total += reap_study(db, study_id)
        except TuneforgeError as exc:  # deleted meanwhile, or the database is busy
            log.info("reaper skipped study %s: %s", study_id, exc)
    if queue is None:
        return total
    study_ids = list(managed_study_ids(db) if managed is None else managed)
    loss = loss_check(queue, settings) if study_ids else None
    for study_id in study_ids:
        dispatch_study(db, queue, settings, study_id, loss)
    return total


def dispatch_study(
    db: Database, queue: TaskQueue, settings: Settings, study_id: int, loss: LossCheck | None
) -> None:
    """Plan one managed study's tasks and send them once the plan has committed."""
    try:
        plan = plan_dispatches(
            db, study_id, settings.dispatch_ttl_seconds, settings.default_parallelism, loss
        )
    except TuneforgeError as exc:  # deleted meanwhile, or the database is busy
        log.info("planner skipped study %s: %s", study_id, exc)
        return
    execute(plan, queue)


class Reconciler:
    """Runs :func:`reconcile_once` on a daemon thread until stopped; :meth:`wake` runs it now."""

    def __init__(self, db: Database, settings: Settings, queue: TaskQueue | None) -> None:
        self._db = db
        self._settings = settings
        self._queue = queue
        self._interval = settings.reconcile_interval_seconds
        #: Managed studies as of the last pass (or marked since): a trial that ends in
        #: another study costs no query to find out it has nothing to dispatch.
        self._managed: frozenset[int] = frozenset()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneforge-reconciler", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def mark_managed(self, study_id: int) -> None:
        """``study_id`` was just made managed (before the next pass sees it)."""
        self._managed = self._managed | {study_id}

    def dispatches(self, study_id: int) -> bool:
        """Whether :meth:`after_trial_ended` would dispatch anything for ``study_id`` (a
        managed study, known at the last pass, on a server with a task queue)."""
        return self._queue is not None and self._interval > 0 and study_id in self._managed

    def after_trial_ended(self, study_id: int) -> None:
        """Dispatch a managed study's next tasks now that one of its trials ended; run
        after the request committed (a FastAPI background task). The pass stays the
        safety net: a failure here only waits for it."""
        queue = self._queue
        if queue is None or not self.dispatches(study_id):
            return
        try:
            dispatch_study(self._db, queue, self._settings, study_id, None)
        except Exception:
            log.exception("dispatch after a trial of study %s ended failed", study_id)

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
                if self._queue is not None:
                    self._managed = frozenset(managed_study_ids(self._db))
                reconcile_once(self._db, self._queue, self._settings, self._managed)
            except TuneforgeError as exc:  # the database is away: one line, not a traceback
                log.warning("reconciler pass skipped: %s", exc)
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("reconciler pass failed")
