"""The server's background reconciler.

Today it expires leases: every ``reaper_interval_seconds`` it fails the trials
whose worker went silent and queues their retries, so a dead worker never
holds a slot for long. It is safe to run in several replicas: each study is
handled inside its own locked transaction and the work is idempotent.
Managed studies' Celery queues join this loop with the worker issue.
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
from .services.lifecycle import reap_expired, refresh_study_state

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


def reconcile_once(db: Database) -> int:
    total = 0
    for study_id in studies_with_expired_leases(db):
        try:
            total += reap_study(db, study_id)
        except TuneforgeError as exc:  # deleted meanwhile, or the database is busy
            log.info("reaper skipped study %s: %s", study_id, exc)
    return total


class Reconciler:
    """Runs :func:`reconcile_once` on a daemon thread until stopped."""

    def __init__(self, db: Database, interval: float) -> None:
        self._db = db
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneforge-reconciler", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                reconcile_once(self._db)
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("reconciler pass failed")
