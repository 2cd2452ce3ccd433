"""Queries on the study and trial tables, returning rows inside the service's transaction
or core value objects for everything that leaves it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar, cast

from sqlalchemy import Row, Select, Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ...core.errors import NotFound
from ...core.study import Study, StudySpec, parse_study_spec
from ...core.trials import Measurement, StudyState, Trial, TrialState
from .engine import note_study_lock
from .models import Base, MeasurementRow, ProjectRow, StudyRow, TrialRow

_T = TypeVar("_T")

DEFAULT_PROJECT = "default"


def utcnow() -> datetime:
    return datetime.now(UTC)


def default_project_id(session: Session) -> int:
    """The id of the default project, created on first use."""
    pid = session.scalar(select(ProjectRow.id).where(ProjectRow.name == DEFAULT_PROJECT))
    if pid is None:
        row = ProjectRow(name=DEFAULT_PROJECT, created_at=utcnow())
        session.add(row)
        session.flush()
        pid = row.id
    return pid


def for_update(stmt: Select[_T]) -> Select[_T]:
    """``stmt`` locking the rows it reads: ``FOR NO KEY UPDATE`` on PostgreSQL (a no-op on
    SQLite, whose write transactions are IMMEDIATE).

    Not ``FOR UPDATE``: that lock also conflicts with the key-share lock a foreign-key
    check takes, so while one transaction held a study row, every insert of a
    measurement, trial or dispatch of that study, by any request, waited for it. Two
    lockers of a row still exclude each other, and deleting a row still waits for them.
    """
    return stmt.with_for_update(key_share=True)


# The statements of the per-request reads, built once with bound parameters: a statement
# built per call costs SQLAlchemy its construction and cache key every time (the compiled
# form is reused either way).
_STUDY = select(StudyRow).where(StudyRow.id == bindparam("study_id"))
_STUDY_LOCKED = for_update(_STUDY)
_TRIAL = select(TrialRow).where(
    TrialRow.study_id == bindparam("study_id"), TrialRow.number == bindparam("number")
)
_TRIAL_LOCKED = for_update(_TRIAL)
#: The trial under its row lock (``FOR NO KEY UPDATE`` of the trial alone) with its study's
#: spec: :func:`trial_and_spec`, and narrowed in api/services/lease_calls.py.
TRIAL_AND_SPEC = (
    select(TrialRow, StudyRow.spec)
    .join(StudyRow, StudyRow.id == TrialRow.study_id)
    .where(TrialRow.study_id == bindparam("study_id"), TrialRow.number == bindparam("number"))
    .with_for_update(of=TrialRow, key_share=True)
)
_MEASUREMENTS_OF = (
    select(MeasurementRow)
    .where(MeasurementRow.trial_id.in_(bindparam("ids", expanding=True)))
    .order_by(MeasurementRow.trial_id, MeasurementRow.step)
)
_MEASUREMENTS_BY_NUMBER = (
    select(MeasurementRow)
    .join(TrialRow, TrialRow.id == MeasurementRow.trial_id)
    .where(TrialRow.study_id == bindparam("study_id"), TrialRow.number == bindparam("number"))
    .order_by(MeasurementRow.step)
)
_TRIALS_LOCKED = for_update(
    select(TrialRow)
    .where(
        TrialRow.study_id == bindparam("study_id"),
        TrialRow.number.in_(bindparam("numbers", expanding=True)),
    )
    .order_by(TrialRow.number)  # one locking order, whichever batch comes first
)
_MEASUREMENTS_BY_NUMBERS = (
    select(TrialRow.number, MeasurementRow)
    .join(TrialRow, TrialRow.id == MeasurementRow.trial_id)
    .where(
        TrialRow.study_id == bindparam("study_id"),
        TrialRow.number.in_(bindparam("numbers", expanding=True)),
    )
    .order_by(TrialRow.number, MeasurementRow.step)
)


def get_study_row(session: Session, study_id: int, *, lock: bool = False) -> StudyRow:
    """The study row, locked (:func:`for_update`) when ``lock``; on PostgreSQL the lock's
    wait and hold are noted for the metrics (:func:`note_study_lock`)."""
    params = {"study_id": study_id}
    if not lock:
        row = session.scalar(_STUDY, params)
    else:
        started = time.perf_counter()
        row = session.scalar(_STUDY_LOCKED, params)
        if row is not None and session.get_bind().dialect.name == "postgresql":
            note_study_lock(session, time.perf_counter() - started)
    if row is None:
        raise NotFound(f"study {study_id} does not exist", field="study_id")
    return row


def get_trial_row(session: Session, study_id: int, number: int, *, lock: bool = False) -> TrialRow:
    params = {"study_id": study_id, "number": number}
    row = session.scalar(_TRIAL_LOCKED if lock else _TRIAL, params)
    if row is None:
        raise NotFound(f"trial {number} does not exist in study {study_id}", field="number")
    return row


def trial_and_spec(session: Session, study_id: int, number: int) -> tuple[TrialRow, StudySpec]:
    """The trial row, locked (:func:`for_update`, the trial's row alone), with its study's
    spec, in one statement: a measurement's reads (the study row itself is not loaded).
    A missing study or trial is a :class:`NotFound` naming which."""
    found = session.execute(TRIAL_AND_SPEC, {"study_id": study_id, "number": number}).first()
    if found is None:
        get_study_row(session, study_id)  # which one is missing
        raise NotFound(f"trial {number} does not exist in study {study_id}", field="number")
    return found[0], parse_spec(found[1])


def trial_rows(
    session: Session, study_id: int, states: Iterable[TrialState] | None = None
) -> Sequence[TrialRow]:
    stmt = select(TrialRow).where(TrialRow.study_id == study_id)
    if states is not None:
        stmt = stmt.where(TrialRow.state.in_([s.value for s in states]))
    return session.scalars(stmt.order_by(TrialRow.number)).all()


def counts_of(study: StudyRow) -> dict[str, int]:
    """Trials per state (every state present, zeros included), from the study's summary
    columns (kept by ``api/services/lifecycle.py``)."""
    return {s.value: int(getattr(study, f"n_{s.value}") or 0) for s in TrialState}


def state_counts(session: Session, study_id: int) -> dict[str, int]:
    """How many trials the study has in each state, from its row (no scan of its trials;
    the row is usually in the session already, so this issues no statement)."""
    study = session.get(StudyRow, study_id)
    if study is None:
        raise NotFound(f"study {study_id} does not exist", field="study_id")
    return counts_of(study)


def scanned_state_counts(session: Session, study_id: int) -> dict[str, int]:
    """:func:`state_counts` by counting the trials (for checks of the summary)."""
    rows = session.execute(
        select(TrialRow.state, func.count())
        .where(TrialRow.study_id == study_id)
        .group_by(TrialRow.state)
    ).all()
    counts = {s.value: 0 for s in TrialState}
    counts.update({state: n for state, n in rows})
    return counts


#: Most ids bound in one ``IN (...)``: PostgreSQL takes at most 65,535 parameters.
ID_CHUNK = 10_000


def measurements_of(session: Session, trial_ids: Sequence[int]) -> dict[int, list[MeasurementRow]]:
    """The measurements of each trial id, ordered by step (read in chunks of ids)."""
    out: dict[int, list[MeasurementRow]] = {}
    for start in range(0, len(trial_ids), ID_CHUNK):
        chunk = list(trial_ids[start : start + ID_CHUNK])
        for m in session.scalars(_MEASUREMENTS_OF, {"ids": chunk}).all():
            out.setdefault(m.trial_id, []).append(m)
    return out


def measurements_by_number(session: Session, study_id: int, number: int) -> list[MeasurementRow]:
    """The measurements of the study's trial ``number``, ordered by step (none when there is
    no such trial)."""
    return list(session.scalars(_MEASUREMENTS_BY_NUMBER, {"study_id": study_id, "number": number}))


def _table(model: type[Base]) -> Table:
    """A mapped class's table, for Core statements that skip the ORM's per-call work."""
    return cast(Table, model.__table__)


#: SQLite, built once: insert a measurement unless its step is stored already.
_NEW_MEASUREMENT = (
    sqlite_insert(_table(MeasurementRow))
    .on_conflict_do_nothing(index_elements=["trial_id", "step"])
    .returning(_table(MeasurementRow).c.step)
)


def _measurement_extending_lease() -> Any:
    """PostgreSQL: insert a measurement unless its step is stored already and, when it
    stored the row, set the trial's new lease and ``updated_at``, in one statement (the
    insert in a ``WITH`` clause). Built on
    the tables, not the mapped classes: the ORM's bulk-update machinery cost more CPU
    than the statement (the caller sets the loaded row's values itself)."""
    measurements, trials = _table(MeasurementRow), _table(TrialRow)
    columns = ("trial_id", "step", "study_id", "values", "elapsed_seconds", "created_at")
    added = (
        postgresql_insert(measurements)
        .values({c: bindparam(f"m_{c}") for c in columns})
        .on_conflict_do_nothing(index_elements=["trial_id", "step"])
        .returning(measurements.c.trial_id)
        .cte("added")
    )
    return (
        update(trials)
        .where(trials.c.id == added.c.trial_id)
        .values(lease_expires_at=bindparam("lease"), updated_at=bindparam("touched_at"))
        .returning(trials.c.id)
    )


#: The insert that extends the lease (also sent without the ORM: api/services/lease_calls.py).
MEASUREMENT_EXTENDING_LEASE = _measurement_extending_lease()


def add_measurement_if_new(
    session: Session, row: MeasurementRow, trial: TrialRow, lease: datetime
) -> bool:
    """Insert ``row`` unless the trial has that step already, and then set the running
    ``trial``'s lease to ``lease`` and its ``updated_at`` to the row's time; False: a
    repeat, nothing stored or changed. On PostgreSQL one statement does both (the repeat
    check is the insert's); on SQLite the insert returns whether it stored the row (a
    read, then a session add, before SQLite 3.35) and the lease is the session's update."""
    values = {
        "trial_id": row.trial_id,
        "step": row.step,
        "study_id": row.study_id,
        "values": row.values,
        "elapsed_seconds": row.elapsed_seconds,
        "created_at": row.created_at,
    }
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        params = {f"m_{c}": v for c, v in values.items()}
        params |= {"lease": lease, "touched_at": row.created_at}
        if session.connection().execute(MEASUREMENT_EXTENDING_LEASE, params).first() is None:
            return False
        set_committed_value(trial, "lease_expires_at", lease)  # as stored: nothing to flush
        set_committed_value(trial, "updated_at", row.created_at)
        return True
    if not dialect.insert_returning:
        if session.get(MeasurementRow, (row.trial_id, row.step)) is not None:
            return False
        session.add(row)
    elif session.connection().execute(_NEW_MEASUREMENT, values).first() is None:
        return False
    trial.lease_expires_at = lease
    trial.updated_at = row.created_at
    return True


def locked_trial_rows(
    session: Session, study_id: int, numbers: Sequence[int]
) -> dict[int, TrialRow]:
    """The study's trials ``numbers`` that exist, by number, locked (:func:`for_update`) in
    one statement, in the order of their numbers."""
    params = {"study_id": study_id, "numbers": list(numbers)}
    return {row.number: row for row in session.scalars(_TRIALS_LOCKED, params)}


def measurements_by_numbers(
    session: Session, study_id: int, numbers: Sequence[int]
) -> dict[int, list[MeasurementRow]]:
    """The measurements of the study's trials ``numbers``, by number, each ordered by step
    (a trial without any is missing from the answer)."""
    found: dict[int, list[MeasurementRow]] = {}
    params = {"study_id": study_id, "numbers": list(numbers)}
    for number, row in session.execute(_MEASUREMENTS_BY_NUMBERS, params):
        found.setdefault(number, []).append(row)
    return found


def to_trial(row: TrialRow, measurements: Sequence[MeasurementRow] = ()) -> Trial:
    """The core value object of a trial row."""
    return Trial(
        number=row.number,
        state=TrialState(row.state),
        params=dict(row.params),
        values=dict(row.values) if row.values is not None else None,
        client_id=row.client_id,
        retry_of=row.retry_of,
        attempt=row.attempt,
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        updated_at=row.updated_at,
        lease_expires_at=row.lease_expires_at,
        reason=row.reason,
        metadata=dict(row.metadata_ or {}),
        measurements=tuple(
            Measurement(m.step, dict(m.values), m.elapsed_seconds, m.created_at)
            for m in measurements
        ),
        resume_from_step=row.resume_from_step,
    )


def finished_since(
    session: Session, study_id: int, seq: int, with_result: Iterable[TrialState]
) -> tuple[int, list[Trial]]:
    """The trials of the study that finished after ``finished_seq`` ``seq`` and are in
    ``with_result``, as the algorithms see them (:func:`_finished_trial`), and the newest
    ``finished_seq`` among every trial that finished since (``seq`` when none did).

    Read with Core statements into :class:`Trial` objects directly: the whole history of a
    study (the first read after a start) skips one ORM object per trial and per
    measurement, and the measurements come in one statement joined on the trials rather
    than in chunks of ids: at 100,000 trials the read took 6 to 7 s through the ORM."""
    rows = session.execute(_FINISHED_SINCE, {"study_id": study_id, "seq": seq}).all()
    if not rows:
        return seq, []
    newest = max(seq, *(r.finished_seq for r in rows))
    keep = {s.value for s in with_result}
    rows = [r for r in rows if r.state in keep]
    ms: dict[int, list[Row[Any]]] = {}
    if rows:
        params = {"study_id": study_id, "seq": seq, "states": sorted(keep)}
        for m in session.execute(_MEASUREMENTS_FINISHED_SINCE, params):
            ms.setdefault(m.trial_id, []).append(m)
    return newest, [_finished_trial(r, ms.get(r.id, ())) for r in rows]


def _finished_trial(row: Row[Any], measurements: Sequence[Row[Any]]) -> Trial:
    """A finished trial with what the algorithms and the stopping rules read of it: no
    timestamps, client, reason or metadata (none of them looks at those), which also
    keeps a long history light to hold and to send to the fit process."""
    return Trial(
        number=row.number,
        state=TrialState(row.state),
        params=row.params,
        values=row.values,
        retry_of=row.retry_of,
        attempt=row.attempt,
        resume_from_step=row.resume_from_step,
        measurements=tuple(Measurement(m.step, m.values, m.elapsed_seconds) for m in measurements),
    )


def _finished_since_statements() -> tuple[Select[Any], Select[Any]]:
    trials, measurements = _table(TrialRow), _table(MeasurementRow)
    c, mc = trials.c, measurements.c
    since = (c.study_id == bindparam("study_id")) & (c.finished_seq > bindparam("seq"))
    kept = (c.id, c.number, c.state, c.params, c["values"], c.retry_of, c.attempt)
    finished = (
        select(*kept, c.resume_from_step, c.finished_seq).where(since).order_by(c.finished_seq)
    )
    measured = (
        select(mc.trial_id, mc.step, mc["values"], mc.elapsed_seconds)
        .join(trials, c.id == mc.trial_id)
        .where(
            since,
            mc.study_id == bindparam("study_id"),
            c.state.in_(bindparam("states", expanding=True)),
        )
        .order_by(mc.trial_id, mc.step)
    )
    return finished, measured


_FINISHED_SINCE, _MEASUREMENTS_FINISHED_SINCE = _finished_since_statements()


def load_trials(
    session: Session,
    study_id: int,
    states: Iterable[TrialState] | None = None,
    *,
    with_measurements: bool = False,
) -> list[Trial]:
    rows = trial_rows(session, study_id, states)
    ms = measurements_of(session, [r.id for r in rows]) if with_measurements else {}
    return [to_trial(r, ms.get(r.id, ())) for r in rows]


def spec_of(row: StudyRow) -> StudySpec:
    """The row's spec as a validated core object (parsed once per distinct spec)."""
    return parse_spec(row.spec)


def parse_spec(raw: Any) -> StudySpec:
    """A stored spec (the ``spec`` column's value) as a validated core object, parsed once
    per distinct spec."""
    return _parse_cached(json.dumps(raw, sort_keys=True))


@lru_cache(maxsize=1024)
def _parse_cached(spec_json: str) -> StudySpec:
    return parse_study_spec(json.loads(spec_json))


def to_study(
    row: StudyRow, counts: dict[str, int], best: Sequence[Trial], spec: StudySpec | None = None
) -> Study:
    return Study(
        id=row.id,
        spec=spec or spec_of(row),
        state=StudyState(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        trial_counts=counts,
        best_trials=tuple(best),
        completion_reason=row.completion_reason,
        managed=bool(row.managed),
        evaluation=dict(row.evaluation) if row.evaluation is not None else None,
    )
