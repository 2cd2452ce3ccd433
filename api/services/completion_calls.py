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
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any, Generic, TypeVar

from psycopg.types.json import Jsonb
from sqlalchemy import JSON, ColumnElement, Update, any_, bindparam, inspect, select, update

from ...core.errors import InvalidSpec
from ...core.study import StudySpec
from ...core.trials import Trial, TrialState, check_metric_values
from ..db import driver
from ..db.engine import Database
from ..db.models import Base, MeasurementRow, StudyRow, TrialRow
from ..db.repository import for_update, spec_of, to_trial, utcnow
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
    try:
        with driver.pipeline(db) as tx:
            curves = tx.queue(_CURVES, keys)
            study_read = tx.queue(_STUDY_LOCKED, keys)
            trials_read = tx.queue(_TRIALS_LOCKED, keys)
            asked = time.perf_counter()
            found = study_read.rows()
            granted = time.perf_counter()
            trials = {r.number: _Detached.of(TrialRow, r) for r in trials_read.rows()}
            if not found or len(trials) != len(numbers):
                raise _Elsewhere
            study = _Detached.of(StudyRow, found[0])
            _apply_all(study.row, {n: t.row for n, t in trials.items()}, calls)
            study.queue_changes(tx)
            for trial in trials.values():
                trial.queue_changes(tx)
            measured = _by_number(curves.rows())
    except _Elsewhere:
        return None
    if db.lock_observer is not None:
        db.lock_observer(granted - asked, time.perf_counter() - granted)
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


# ---- rows outside any session ---------------------------------------------------------

_Row = TypeVar("_Row", bound=Base)


@dataclass
class _Detached(Generic[_Row]):
    """A row in no session, made from a row the driver read, and the values it was read
    with (to tell what the lifecycle module changed)."""

    row: _Row
    loaded: dict[str, Any]

    @classmethod
    def of(cls, model: type[_Row], read: Any) -> _Detached[_Row]:
        values = {key: _as_utc(getattr(read, column.name)) for key, column in _columns(model)}
        return cls(model(**values), values)

    def queue_changes(self, tx: driver.Pipeline) -> None:
        """Queue the ``UPDATE`` of the columns the lifecycle module assigned a different
        value (it assigns new JSON values, never changes one in place)."""
        model = type(self.row)
        params: dict[str, Any] = {}
        for key, column in _columns(model):
            value = getattr(self.row, key)
            if value != self.loaded[key]:
                params[f"v_{column.name}"] = _bound(column, value)
        if params:
            changed = tuple(sorted(params))
            tx.queue(_update(model, changed), {"row_id": self.loaded["id"], **params})


@cache
def _columns(model: type[Base]) -> tuple[tuple[str, ColumnElement[Any]], ...]:
    """The model's attributes and their columns, as read here (a study's algorithm state
    and evaluation are neither read nor written by a completion)."""
    skipped = {"algorithm_state", "evaluation"}
    return tuple(
        (attr.key, attr.columns[0])
        for attr in inspect(model).column_attrs
        if attr.key not in skipped
    )


@lru_cache(maxsize=256)
def _update(model: type[Base], parameters: tuple[str, ...]) -> Update:
    """``UPDATE`` of one row of ``model`` by id, setting the columns of ``parameters``
    (``v_`` and the column's name) to those parameters."""
    table = Base.metadata.tables[model.__tablename__]
    values: dict[str, Any] = {name[2:]: bindparam(name) for name in parameters}
    return update(table).where(table.c.id == bindparam("row_id")).values(values)


def _bound(column: ColumnElement[Any], value: Any) -> Any:
    if value is not None and isinstance(column.type, JSON):
        return Jsonb(value)
    return value


def _as_utc(value: Any) -> Any:
    """A timestamp as the ORM's ``UTCDateTime`` gives it (UTC); anything else unchanged."""
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _by_number(measurements: Sequence[Any]) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = {}
    for m in measurements:
        found.setdefault(m.number, []).append(m._replace(created_at=_as_utc(m.created_at)))
    return found


def _statements() -> tuple[Any, Any, Any]:
    study_columns = [column for _, column in _columns(StudyRow)]
    trial_columns = [column for _, column in _columns(TrialRow)]
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
