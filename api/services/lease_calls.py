"""Calls that only extend a running trial's lease (and store a report), on PostgreSQL,
under the trial's row lock alone and without the ORM.

Most reports change one thing: a new row in ``measurements`` and the running trial's
lease. When the study's rule never decides anything (``none``), no peer is read and no
state changes, so :func:`measurement` is two statements in one transaction: the trial
read under its row lock with the study's spec (``FOR NO KEY UPDATE`` of the trial alone,
as :func:`.trials._measure_under_trial_lock` takes it) and the insert that extends the
lease (``repository.MEASUREMENT_EXTENDING_LEASE``). Sent by psycopg
(:func:`.driver.transaction`) they cost the server about a third of the CPU the same
statements cost through an ORM session (docs/performance.md, run V); a report is the
most frequent call of a study. :func:`heartbeat` is the same read and an ``UPDATE`` of
the lease, whatever the study's rule (a heartbeat consults none); the usual path also
locks the study row, which every suggest and completion of the study takes.

Anything else goes the usual way, in :mod:`.trials`: SQLite, held-back ``earlier``
reports, a rule that decides, and a trial that is missing, not running or past its
lease. Each of those is detected before anything is written, and the transaction is
rolled back. A repeated step stores nothing here either (the insert skips a stored
step) and gets the reply the usual path gives it: the trial's state, no action.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import bindparam, update

from ...core.study import StudySpec
from ...core.trials import check_metric_values
from ..db import driver
from ..db.engine import Database
from ..db.models import StudyRow, TrialRow
from ..db.repository import MEASUREMENT_EXTENDING_LEASE, TRIAL_AND_SPEC, parse_spec, utcnow
from .hints import StudyHints
from .lifecycle import RUNNING_VALUES, lease_expired, lease_until
from .promotions import study_rule

#: Whether a study's measurements may take this path: its rule never decides.
_PLAIN = StudyHints()

#: The ORM path's read (``repository.TRIAL_AND_SPEC``: the trial under its row lock with
#: its study's spec), narrowed to the trial's id, state and lease.
_TRIAL_READ = TRIAL_AND_SPEC.with_only_columns(
    TrialRow.id, TrialRow.state, TrialRow.lease_expires_at, StudyRow.spec
)
#: A heartbeat's write: the trial's new lease.
_LEASE_EXTENDED = (
    update(TrialRow)
    .where(TrialRow.id == bindparam("trial_id"))
    .values(lease_expires_at=bindparam("lease"), updated_at=bindparam("touched_at"))
)


class _Elsewhere(Exception):
    """This report takes the usual path: roll back what was read."""


def measurement(
    db: Database, study_id: int, number: int, step: int, values: Any, elapsed: float | None
) -> str | None:
    """Store the report of ``step`` and extend the trial's lease when the study's rule
    never decides (a step stored before: nothing); returns the trial's state, or None
    when the report takes the usual path (:mod:`.trials`). ``step`` and ``elapsed`` are
    checked by the caller; ``values`` against the study's metrics here (422), in the
    usual path's order (after the lease, before the trial's state)."""
    if db.backend != "postgresql" or _PLAIN.get(db, study_id) is False:
        return None
    try:
        with driver.transaction(db) as tx:
            trial, spec = _trial_and_spec(tx, study_id, number)
            if not _PLAIN.note(db, study_id, not study_rule(spec).decides):
                raise _Elsewhere
            now = utcnow()
            if lease_expired(trial, now):
                raise _Elsewhere  # reaped under the study lock, before the values are judged
            checked = check_metric_values(values, spec.metrics, require_all=False)
            if trial.state not in RUNNING_VALUES:
                raise _Elsewhere  # a conflict the usual path words
            params = {
                "m_trial_id": trial.id,
                "m_step": step,
                "m_study_id": study_id,
                "m_values": Jsonb(checked),
                "m_elapsed_seconds": float(elapsed) if elapsed is not None else None,
                "m_created_at": now,
                "lease": lease_until(spec, now),
                "touched_at": now,
            }
            # a repeated step stores nothing and keeps the lease; its reply is the same (a
            # rule that never decides records no action and names no next step)
            tx.run(MEASUREMENT_EXTENDING_LEASE, params)
    except _Elsewhere:
        return None
    return str(trial.state)


def heartbeat(db: Database, study_id: int, number: int) -> str | None:
    """Extend a running trial's lease under its row lock alone (any rule: a heartbeat
    consults none); returns the trial's state, or None when the heartbeat takes the usual
    path (:func:`.trials.heartbeat`: SQLite, a trial missing, not running or past its lease)."""
    if db.backend != "postgresql":
        return None
    try:
        with driver.transaction(db) as tx:
            trial, spec = _trial_and_spec(tx, study_id, number)
            now = utcnow()
            if trial.state not in RUNNING_VALUES or lease_expired(trial, now):
                raise _Elsewhere
            lease = {"trial_id": trial.id, "lease": lease_until(spec, now), "touched_at": now}
            tx.run(_LEASE_EXTENDED, lease)
    except _Elsewhere:
        return None
    return str(trial.state)


def _trial_and_spec(tx: driver.Transaction, study_id: int, number: int) -> tuple[Any, StudySpec]:
    """The trial's row (under its lock) and its study's spec; the usual path names what is
    missing."""
    found = tx.run(_TRIAL_READ, {"study_id": study_id, "number": number})
    if not found:
        raise _Elsewhere
    return found[0], parse_spec(found[0].spec)
