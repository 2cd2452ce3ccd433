"""The suggest use case: hand a client its own unfinished trials, then paused trials the
early-stopping rule promotes, then queued ones (all in one short transaction under the
study's row lock), then new points from the study's algorithm, fitted outside any lock
(:mod:`.suggest_fit`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ...core.errors import InvalidSpec
from ...core.study import StudySpec
from ...core.trials import TASK_CLIENT_PREFIX, StudyState, Trial, TrialState
from ..db.engine import Database
from ..db.models import StudyRow, TrialRow
from ..db.repository import (
    counts_of,
    for_update,
    get_study_row,
    measurements_of,
    spec_of,
    to_trial,
    utcnow,
)
from . import suggest_spare
from .hints import StudyHints
from .lifecycle import (
    RUNNING_STATES,
    Scope,
    activate,
    apply_decision,
    budget_left,
    lease_until,
    reap_expired,
    refresh_study_state,
)
from .managed import claim_dispatch
from .promotions import promotable, study_rule
from .suggest_calls import bookkeeping_pipelined
from .suggest_fit import (
    Ask,
    Snapshot,
    batch_idle,
    claim_batcher,
    fill_in_transaction,
    filling,
    fits_in_claim,
    hand_out,
    history_of,
    new_points,
    read_snapshot,
)

__all__ = ["MAX_SUGGEST_COUNT", "check_count", "history_of", "suggest"]

MAX_SUGGEST_COUNT = 1000
#: How long a suggest waits for a running refill of its study's spare points (when there
#: are none left) before it asks the algorithm itself (api/services/suggest_spare.py).
REFILL_WAIT_SECONDS = 1.0


def check_count(count: int) -> None:
    if not 1 <= count <= MAX_SUGGEST_COUNT:
        raise InvalidSpec(f"must be between 1 and {MAX_SUGGEST_COUNT}, got {count}", field="count")


def suggest(
    db: Database, study_id: int, count: int, client_id: str | None
) -> tuple[list[Trial], StudyState]:
    """Trials for one worker; an empty list with the study's state when there is no work.

    The bookkeeping (expired leases, the caller's own trials, promotions, queued trials)
    runs in one short locked transaction; new points come from the algorithm through
    :func:`.suggest_fit.new_points`, whose fit holds no lock, except for algorithms that
    read no history (:func:`.suggest_fit.fits_in_claim`): they run in the bookkeeping's
    transaction, so such a suggest is one write transaction.
    """
    check_count(count)
    handed: list[Trial] = []
    snapshot = None
    # spare points are handed out by the bookkeeping transaction (api/services/suggest_spare.py)
    spares = suggest_spare.available(db, study_id, wait=REFILL_WAIT_SECONDS)
    only_new = not _in_claim.get(db, study_id) and not spares
    if only_new:
        only_new, snapshot = _only_new_points(db, study_id, client_id, count)
    if only_new:
        need = count
    else:
        handed, need, state = _bookkeeping_together(db, study_id, count, client_id)
        if need == 0:
            return handed, state
    ask = new_points(db, study_id, need, client_id, snapshot)
    return [*handed, *ask.trials], ask.study_state


#: Per study, a hint: whether its algorithm ran inside the bookkeeping transaction
#: last time (:func:`.suggest_fit.fits_in_claim`). The transaction checks it again on
#: the locked row, so a wrong hint only costs the other path's extra read.
_in_claim = StudyHints()


def _note_in_claim(db: Database, study_id: int, spec: StudySpec) -> bool:
    return _in_claim.note(db, study_id, fits_in_claim(spec))


def _only_new_points(
    db: Database, study_id: int, client_id: str | None, count: int
) -> tuple[bool, Snapshot | None]:
    """Whether the bookkeeping would find nothing to do (read without a lock): the study
    is active with budget left, no lease ran out, the client holds no running trial, no
    trial is queued and no paused trial waits for a promoting rule. Then the suggest
    goes straight to the algorithm's batch and takes the study lock once, to claim.

    When it does and no fit of the study runs in this process (this caller will lead
    its batch), the same read transaction also takes the batch's snapshot for ``count``
    points (:func:`.suggest_fit.read_snapshot`): one transaction fewer per suggest."""
    if client_id and client_id.startswith(TASK_CLIENT_PREFIX):
        return False, None  # the bookkeeping claims the task's dispatch
    with db.read(transaction=False) as session:
        study = get_study_row(session, study_id)
        spec = spec_of(study)
        if _note_in_claim(db, study_id, spec):
            return False, None  # the bookkeeping runs the algorithm too: one transaction
        counts = counts_of(study)
        if study.state != StudyState.ACTIVE.value or study.search_exhausted:
            return False, None
        if counts[TrialState.REQUESTED.value]:
            return False, None
        if counts[TrialState.PAUSED.value] and study_rule(spec).promotes:
            return False, None
        left = budget_left(spec, counts)
        if left is not None and left <= 0:
            return False, None
        if _dues(session, study_id, [client_id], utcnow())[0]:
            return False, None
        if not batch_idle(db, study_id):
            return True, None
        return True, read_snapshot(session, study, spec, count)


def _dues(
    session: Session, study_id: int, clients: Sequence[str | None], now: datetime
) -> list[bool]:
    """For each of ``clients``: whether a running trial of the study has an expired lease
    or belongs to that client (one indexed read for them all, no lock; it returns a row
    only for such trials, which a study rarely has)."""
    named = sorted({c for c in clients if c})
    due = [TrialRow.lease_expires_at < now]
    if named:
        due.append(TrialRow.client_id.in_(named))
    rows = session.execute(
        select(TrialRow.client_id, TrialRow.lease_expires_at).where(
            TrialRow.study_id == study_id,
            TrialRow.state.in_([s.value for s in RUNNING_STATES]),
            or_(*due),
        )
    ).all()
    expired = any(lease is not None and lease < now for _, lease in rows)
    holding = {client for client, _ in rows}
    return [expired or (bool(c) and c in holding) for c in clients]


def _bookkeeping_together(
    db: Database, study_id: int, count: int, client_id: str | None
) -> tuple[list[Trial], int, StudyState]:
    """:func:`_bookkeeping` for this suggest, shared with the suggests of the same study
    that wait for it in this process (:func:`.suggest_fit.claim_batcher`): under load a
    study's row lock is its throughput, and one transaction for every waiting caller takes
    it once instead of once per caller. Each caller is served as if it came alone, in the
    order they arrived. Returns the caller's trials, how many points the algorithm still
    owes it (outside the claim) and the study's state."""
    work = filling(lambda batch: _bookkeeping(db, study_id, batch))
    ask = claim_batcher(db).submit(study_id, Ask(count, client_id), work)
    return ask.trials, ask.remaining, ask.study_state


def _bookkeeping(db: Database, study_id: int, batch: Sequence[Ask]) -> None:
    """Hand each ask of ``batch`` what needs no algorithm, in one locked transaction; the
    algorithm adds their new points here too when it runs in the claim
    (:func:`.suggest_fit.fits_in_claim`), else each ask's ``remaining`` says how many it owes.

    Whether any lease ran out or a client holds running trials is read before the
    study lock, so that the lock is held for writing alone when neither is the case (a
    lease running out meanwhile is reaped by the next call). On PostgreSQL a batch that
    only starts new trials is served in two round trips (:mod:`.suggest_calls`)."""
    served = bookkeeping_pipelined(db, study_id, batch)
    if served is not None:
        _note_in_claim(db, study_id, served.spec)
        suggest_spare.refill_if_low(db, study_id, served.spec, served.finished)
        return
    with db.write() as session:
        dues = _dues(session, study_id, [a.client_id for a in batch], utcnow())
        study = get_study_row(session, study_id, lock=True)
        spec = spec_of(study)
        now = utcnow()
        if any(dues):
            reap_expired(session, study, spec, now)
        refresh_study_state(session, study, spec, now)
        fill = _note_in_claim(db, study_id, spec)
        handed = [
            _serve(db, session, study, spec, a, due, fill, now)
            for a, due in zip(batch, dues, strict=True)
        ]
        session.flush()
        ids = [r.id for rows in handed for r in rows]
        ms = measurements_of(session, ids) if ids else {}
        for ask, rows in zip(batch, handed, strict=True):
            ask.trials[:0] = [to_trial(r, ms.get(r.id, ())) for r in rows]
        finished = suggest_spare.finished_of(study)
    suggest_spare.refill_if_low(db, study_id, spec, finished)


def _serve(
    db: Database,
    session: Session,
    study: StudyRow,
    spec: StudySpec,
    ask: Ask,
    due: bool,
    fill: bool,
    now: datetime,
) -> list[TrialRow]:
    """One ask of :func:`_bookkeeping`: its own unfinished trials (when ``due``), promoted
    and queued trials, then new points when the algorithm runs in the claim (``fill``);
    or this process's spare points of the study (:mod:`.suggest_spare`); the rows handed
    out (new points' trials go to ``ask.trials``)."""
    claim_dispatch(session, study.id, ask.client_id, now)
    if study.state != StudyState.ACTIVE.value:
        # docs/api.md: no work; "paused" (may resume) or "completed" (never again)
        ask.study_state = StudyState(study.state)
        return []
    rows = _own_unfinished(session, study, spec, ask.client_id, ask.count, now) if due else []
    need = 0
    if len(rows) < ask.count:
        more, need = _queued_work(session, study, spec, ask.count - len(rows), ask.client_id, now)
        rows += more
    if fill and need and study.state == StudyState.ACTIVE.value:
        fresh = Ask(need, ask.client_id)
        fill_in_transaction(session, study, spec, now, [fresh])
        ask.trials.extend(fresh.trials)
        need = 0
    elif need and study.state == StudyState.ACTIVE.value:
        spares = suggest_spare.take(db, study, spec, need)
        if spares:
            taken = Ask(len(spares), ask.client_id)
            hand_out(session, study, spec, now, [taken], spares)
            ask.trials.extend(taken.trials)
            need -= len(taken.trials)
    refresh_study_state(session, study, spec, now, flush=False)  # the batch flushes once
    ask.study_state = StudyState(study.state)
    ask.remaining = need if study.state == StudyState.ACTIVE.value else 0
    return rows


def _own_unfinished(
    session: Session,
    study: StudyRow,
    spec: StudySpec,
    client_id: str | None,
    count: int,
    now: datetime,
) -> list[TrialRow]:
    """A retried suggest gets back the trials this client already holds."""
    if not client_id:
        return []
    rows = session.scalars(
        select(TrialRow)
        .where(
            TrialRow.study_id == study.id,
            TrialRow.client_id == client_id,
            TrialRow.state.in_([s.value for s in RUNNING_STATES]),
        )
        .order_by(TrialRow.number)
        .limit(count)
    ).all()
    for row in rows:
        row.lease_expires_at = lease_until(spec, now)
        row.updated_at = now
    return list(rows)


def _queued_work(
    session: Session,
    study: StudyRow,
    spec: StudySpec,
    need: int,
    client_id: str | None,
    now: datetime,
) -> tuple[list[TrialRow], int]:
    """Promoted paused trials, then queued ones; and how many new points are still wanted
    (within ``max_active_trials`` and ``max_trials``)."""
    counts = counts_of(study)
    room = need
    if spec.max_active_trials is not None:
        running = sum(counts[s.value] for s in RUNNING_STATES)
        room = min(room, spec.max_active_trials - running)
    if room <= 0:
        return [], 0
    scope = Scope(session, study, spec, now, client_id)
    # promoted paused trials first (same number and params, resume_from_step set)
    handed = [apply_decision(scope, d) for d in promotable(session, study, spec)[:room]]
    if len(handed) < room and counts[TrialState.REQUESTED.value]:
        handed += _pop_requested(session, study, spec, room - len(handed), client_id, now)
    remaining = room - len(handed)
    left = budget_left(spec, counts_of(study))
    if left is not None:
        remaining = min(remaining, left)
    if study.search_exhausted:
        remaining = 0
    return handed, max(0, remaining)


def _pop_requested(
    session: Session,
    study: StudyRow,
    spec: StudySpec,
    limit: int,
    client_id: str | None,
    now: datetime,
) -> list[TrialRow]:
    rows = session.scalars(
        for_update(
            select(TrialRow)
            .where(TrialRow.study_id == study.id, TrialRow.state == TrialState.REQUESTED.value)
            .order_by(TrialRow.number)
            .limit(limit)
        )
    ).all()
    for row in rows:
        activate(study, row, spec, client_id, now)
    return list(rows)
