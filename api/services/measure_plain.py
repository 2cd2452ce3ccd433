"""A measurement of a study without an early-stopping rule, on PostgreSQL, without the ORM.

Most reports change one thing: a new row in ``measurements`` and the running trial's
lease. When the study's rule never decides anything (``none``), no peer is read and no
state changes, so the report is two statements in one transaction: the trial read under
its row lock with the study's spec (``FOR NO KEY UPDATE`` of the trial alone, as
:func:`.trials._measure_under_trial_lock` takes it) and the insert that extends the lease
(``repository.MEASUREMENT_EXTENDING_LEASE``). Sent by psycopg (:func:`.driver.transaction`)
they cost the server about a third of the CPU the same statements cost through an ORM
session (docs/performance.md, run V); a report is the most frequent call of a study.

Anything else goes the usual way, in :mod:`.trials`: SQLite, held-back ``earlier``
reports, a rule that decides, and a trial that is missing, not running or past its
lease. Each of those is detected before anything is written, and the transaction is
rolled back. A repeated step stores nothing here either (the insert skips a stored
step) and gets the reply the usual path gives it: the trial's state, no action.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import bindparam, select

from ...core.trials import TrialState, check_metric_values
from ..db import driver
from ..db.engine import Database
from ..db.models import StudyRow, TrialRow
from ..db.repository import MEASUREMENT_EXTENDING_LEASE, parse_spec, utcnow
from .hints import StudyHints
from .lifecycle import lease_until
from .promotions import study_rule

#: Whether a study's measurements may take this path: its rule never decides.
_PLAIN = StudyHints()

#: The trial's state and lease under its row lock, with its study's spec.
_TRIAL_READ = (
    select(TrialRow.id, TrialRow.state, TrialRow.lease_expires_at, StudyRow.spec)
    .join(StudyRow, StudyRow.id == TrialRow.study_id)
    .where(TrialRow.study_id == bindparam("study_id"), TrialRow.number == bindparam("number"))
    .with_for_update(of=TrialRow, key_share=True)
)
_RUNNING = (TrialState.ACTIVE.value, TrialState.STOPPING.value)


class _Elsewhere(Exception):
    """This report takes the usual path: roll back what was read."""


def store(
    db: Database, study_id: int, number: int, step: int, values: Any, elapsed: float | None
) -> str | None:
    """Store the report of ``step`` and extend the trial's lease when the study's rule
    never decides (a step stored before: nothing); returns the trial's state, or None
    when the report takes the usual path (:mod:`.trials`). ``step`` and ``elapsed`` are checked by
    the caller; ``values`` are checked against the study's metrics here (422)."""
    if db.backend != "postgresql" or _PLAIN.get(db, study_id) is False:
        return None
    try:
        with driver.transaction(db) as tx:
            found = tx.run(_TRIAL_READ, {"study_id": study_id, "number": number})
            if not found:
                raise _Elsewhere  # the usual path names what is missing
            trial = found[0]
            spec = parse_spec(trial.spec)
            if not _PLAIN.note(db, study_id, not study_rule(spec).decides):
                raise _Elsewhere
            checked = check_metric_values(values, spec.metrics, require_all=False)
            now = utcnow()
            expired = trial.lease_expires_at is not None and trial.lease_expires_at < now
            if trial.state not in _RUNNING or expired:
                raise _Elsewhere  # a conflict, or a lease to reap under the study lock
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
