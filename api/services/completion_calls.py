"""Completions on PostgreSQL in two round trips, one of them under the study's lock.

Under a team's load a study's completions hold its row lock about half of the time
(docs/performance.md, run W). Through the ORM a completion holds it for four round
trips (the study row, the trial row, the study's ``UPDATE`` and the trial's) and, on a
busy server, for the wait for the interpreter lock after each. Here the statements go
in a :func:`.driver.pipeline`: the trials' measurements, the study row and the trial
rows under their locks in one round trip, then the two ``UPDATE`` statements with the
``COMMIT`` in another, which the lock is released by. In between, the changes are the
lifecycle module's own (:func:`apply_completion`, :mod:`.lifecycle`) made on rows that
belong to no session; the columns they changed are what is written back.

Anything irregular goes the usual way (:mod:`.completions`), rolled back before
anything is written: SQLite, a trial that is missing, not running or past its lease,
values the study refuses, a study migrated before its summary existed, and a
completion after which the study's state has to be reconsidered with reads
(:func:`.lifecycle.refresh_is_idle`: the study completes, its paused trials may have
to be pruned, the first trials may all have failed alike). The usual path then gives
the answer it always gives.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import any_, bindparam, select

from ...core.errors import InvalidSpec
from ...core.study import StudySpec
from ...core.trials import Trial, TrialState, check_metric_values
from ..db import driver
from ..db.engine import Database
from ..db.models import MeasurementRow, StudyRow, TrialRow
from ..db.repository import for_update, spec_of, to_trial, utcnow
from .detached import Detached, as_utc, observed_lock, read_columns
from .lifecycle import complete, finish, lease_expired, refresh_is_idle


@dataclass(frozen=True)
class Completion:
    """One ``complete`` call, its arguments checked as far as they can be without the
    study."""

    number: int
    values: Any
    infeasible: bool
    reason: str | None
    metadata: Mapping[str, Any]


def apply_completion(
    study: StudyRow, spec: StudySpec, row: TrialRow, call: Completion, now: datetime
) -> None:
    """The completion's changes to its trial and study rows (refused: an exception)."""
    if call.metadata and not TrialState(row.state).is_finished:
        row.metadata_ = {**dict(row.metadata_ or {}), **call.metadata}
    if call.infeasible:
        if call.values is not None:
            check_metric_values(call.values, spec.metrics, require_all=False)
        finish(study, row, TrialState.INFEASIBLE, now, call.reason or "infeasible")
        if call.values:
            row.values = dict(call.values)
        return
    if call.values is None:
        raise InvalidSpec("is required unless infeasible is true", field="values")
    checked = check_metric_values(call.values, spec.metrics, require_all=True)
    complete(study, row, checked, now, call.reason)


class _Elsewhere(Exception):
    """These completions take the usual path: roll back what was read."""


def complete_pipelined(
    db: Database, study_id: int, calls: Sequence[Completion]
) -> list[Trial] | None:
    """Complete the study's trials of ``calls`` (distinct numbers) in one transaction of
    two round trips; their trials as the reply shows them, or None when the calls take
    the usual path (:mod:`.completions`), nothing written."""
    numbers = [c.number for c in calls]
    if db.backend != "postgresql" or len(set(numbers)) != len(numbers):
        return None
    keys = {"study_id": study_id, "numbers": numbers}
    locked: list[float] = []
    try:
        with observed_lock(db, locked), driver.pipeline(db) as tx:
            curves = tx.queue(_CURVES, keys)
            study_read = tx.queue(_STUDY_LOCKED, keys)
            trials_read = tx.queue(_TRIALS_LOCKED, keys)
            asked = time.perf_counter()
            found = study_read.rows()
            if found:
                locked[:] = [asked, time.perf_counter()]
            trials = {r.number: Detached.of(TrialRow, r) for r in trials_read.rows()}
            if not found or len(trials) != len(numbers):
                raise _Elsewhere
            study = Detached.of(StudyRow, found[0])
            _apply_all(study.row, {n: t.row for n, t in trials.items()}, calls)
            study.queue_changes(tx)
            for trial in trials.values():
                trial.queue_changes(tx)
            measured = _by_number(curves.rows())
    except _Elsewhere:
        return None
    return [to_trial(trials[n].row, measured.get(n, ())) for n in numbers]


def _apply_all(study: StudyRow, rows: dict[int, TrialRow], calls: Sequence[Completion]) -> None:
    """Every call applied by the lifecycle module, or :class:`_Elsewhere`."""
    if study.best_trials is None:
        raise _Elsewhere  # computed from the trials, which needs a session
    spec = spec_of(study)
    now = utcnow()
    if any(lease_expired(row, now) for row in rows.values()):
        raise _Elsewhere  # reaped under the lock, and the call refused, the usual way
    try:
        for call in calls:
            apply_completion(study, spec, rows[call.number], call, now)
    except Exception as exc:  # refused: the usual path words it
        raise _Elsewhere from exc
    if not refresh_is_idle(study, spec):
        raise _Elsewhere


def _by_number(measurements: Sequence[Any]) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = {}
    for m in measurements:
        found.setdefault(m.number, []).append(m._replace(created_at=as_utc(m.created_at)))
    return found


def _statements() -> tuple[Any, Any, Any]:
    study_columns = read_columns(StudyRow)
    trial_columns = read_columns(TrialRow)
    numbers = TrialRow.number == any_(bindparam("numbers"))
    curves = (
        select(
            TrialRow.number,
            MeasurementRow.step,
            MeasurementRow.values,
            MeasurementRow.elapsed_seconds,
            MeasurementRow.created_at,
        )
        .join(TrialRow, TrialRow.id == MeasurementRow.trial_id)
        .where(TrialRow.study_id == bindparam("study_id"), numbers)
        .order_by(TrialRow.number, MeasurementRow.step)
    )
    study = for_update(select(*study_columns).where(StudyRow.id == bindparam("study_id")))
    trials = for_update(
        select(*trial_columns)
        .where(TrialRow.study_id == bindparam("study_id"), numbers)
        .order_by(TrialRow.number)  # one locking order, whichever batch comes first
    )
    return curves, study, trials


_CURVES, _STUDY_LOCKED, _TRIALS_LOCKED = _statements()
