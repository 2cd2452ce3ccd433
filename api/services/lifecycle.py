"""State changes shared by the services: new trials, failures with retries, lease
expiry and the study's own state. Every function runs inside the caller's
transaction with the study row already locked."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.study import StudySpec
from ...core.trials import (
    BUDGET_STATES,
    IN_FLIGHT_STATES,
    StudyState,
    TrialState,
    check_transition,
)
from ..db.models import StudyRow, TrialRow
from ..db.repository import state_counts

RUNNING_STATES = (TrialState.ACTIVE, TrialState.STOPPING)


def touch(study: StudyRow, now: datetime) -> None:
    """Record that the study's trials changed (moves the cache version forward)."""
    study.updated_at = now
    study.version = (study.version or 0) + 1


def lease_until(spec: StudySpec, now: datetime) -> datetime:
    return now + timedelta(seconds=spec.retries.lease_seconds)


def new_trial(
    session: Session,
    study: StudyRow,
    params: dict[str, Any],
    state: TrialState,
    now: datetime,
    **fields: Any,
) -> TrialRow:
    """Insert a trial with the next number of the study's counter."""
    number = study.trial_counter or 0
    study.trial_counter = number + 1
    row = TrialRow(
        study_id=study.id,
        number=number,
        state=state.value,
        params=params,
        metadata_=fields.pop("metadata_", {}),
        attempt=fields.pop("attempt", 0),
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(row)
    touch(study, now)
    return row


def activate(row: TrialRow, spec: StudySpec, client_id: str | None, now: datetime) -> None:
    """Hand a requested (or paused) trial to a client with a fresh lease."""
    check_transition(TrialState(row.state), TrialState.ACTIVE, row.number)
    row.state = TrialState.ACTIVE.value
    row.client_id = client_id
    row.started_at = row.started_at or now
    row.lease_expires_at = lease_until(spec, now)
    row.updated_at = now


def finish(
    study: StudyRow, row: TrialRow, target: TrialState, now: datetime, reason: str | None = None
) -> None:
    """Move a trial to a finished state (the transition is checked first).

    ``finished_seq`` takes the study's next version, so readers can fetch the
    trials finished since any point without relying on clocks.
    """
    check_transition(TrialState(row.state), target, row.number)
    row.state = target.value
    row.completed_at = now
    row.updated_at = now
    row.lease_expires_at = None
    if reason is not None:
        row.reason = reason
    touch(study, now)
    row.finished_seq = study.version


def fail_trial(
    session: Session,
    study: StudyRow,
    spec: StudySpec,
    row: TrialRow,
    reason: str,
    *,
    retry: bool,
    now: datetime,
) -> TrialRow | None:
    """Fail a trial and, while its retry budget lasts, queue a copy with the same params."""
    finish(study, row, TrialState.FAILED, now, reason)
    if not retry or row.attempt >= spec.retries.max_retries:
        return None
    return new_trial(
        session,
        study,
        dict(row.params),
        TrialState.REQUESTED,
        now,
        retry_of=row.number,
        attempt=row.attempt + 1,
        metadata_=dict(row.metadata_ or {}),
    )


def reap_expired(session: Session, study: StudyRow, spec: StudySpec, now: datetime) -> int:
    """Fail (and retry) every running trial of the study whose lease has run out."""
    rows = session.scalars(
        select(TrialRow)
        .where(
            TrialRow.study_id == study.id,
            TrialRow.state.in_([s.value for s in RUNNING_STATES]),
            TrialRow.lease_expires_at < now,
        )
        .order_by(TrialRow.number)
        .with_for_update()
    ).all()
    for row in rows:
        expired = row.lease_expires_at
        reason = f"lease expired at {expired.isoformat() if expired else 'unknown'} (no heartbeat)"
        fail_trial(session, study, spec, row, reason, retry=True, now=now)
    return len(rows)


def budget_used(counts: dict[str, int]) -> int:
    return sum(counts[s.value] for s in BUDGET_STATES)


def in_flight(counts: dict[str, int]) -> int:
    return sum(counts[s.value] for s in IN_FLIGHT_STATES)


def refresh_study_state(session: Session, study: StudyRow, spec: StudySpec, now: datetime) -> None:
    """Complete an active study whose budget is spent, grid exhausted, failures too many or
    first trials all failed alike; reopen one completed by its budget when the budget was
    raised."""
    session.flush()
    counts = state_counts(session, study.id)
    reason = completion_reason(study, spec, counts)
    if (
        study.state == StudyState.ACTIVE.value
        and reason in (None, "max_trials", "max_failed_trials")
        and first_trials_failed_alike(session, study, spec, counts)
    ):
        reason = SAME_ERROR
    if study.state == StudyState.ACTIVE.value and reason is not None:
        study.state = StudyState.COMPLETED.value
        study.completion_reason = reason
        touch(study, now)
    elif (
        study.state == StudyState.COMPLETED.value
        and study.completion_reason in ("max_trials", "max_failed_trials")
        and reason is None
    ):
        study.state = StudyState.ACTIVE.value
        study.completion_reason = None
        touch(study, now)


def completion_reason(study: StudyRow, spec: StudySpec, counts: dict[str, int]) -> str | None:
    """Why the study has nothing left to do, or ``None`` while it has."""
    if (
        spec.max_failed_trials is not None
        and counts[TrialState.FAILED.value] >= spec.max_failed_trials
    ):
        return "max_failed_trials"
    if in_flight(counts) > 0:
        return None
    if spec.max_trials is not None and budget_used(counts) >= spec.max_trials:
        return "max_trials"
    if study.search_exhausted:
        return "search_space_exhausted"
    return None


#: ``completion_reason`` of a managed study whose first trials all failed with one error.
SAME_ERROR = "same_error"
#: How many first finished trials must fail alike (fewer when ``max_trials`` is smaller).
SAME_ERROR_TRIALS = 3
_FAILED = (TrialState.FAILED.value, TrialState.INFEASIBLE.value)
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


def same_error_count(spec: StudySpec) -> int:
    """How many first trials the same-error rule looks at for this study."""
    return min(SAME_ERROR_TRIALS, spec.max_trials or SAME_ERROR_TRIALS)


def first_trials_failed_alike(
    session: Session, study: StudyRow, spec: StudySpec, counts: dict[str, int]
) -> bool:
    """Whether a managed study's first finished trials, and only they, all failed or were
    infeasible with one reason (numbers aside): the data or the objective is broken, not
    the configurations.

    Decided from the counts first; reads at most that many trials when exactly that many
    have finished, and holds only in the transaction that recorded the last of them (its
    ``completed_at`` is the study's ``updated_at``), so a study the user set active again
    is not stopped again for the same trials. Lease expiries do not count (a worker
    outage is not the objective's error), nor do studies without a managed objective
    (their clients may report the same infeasibility on purpose).
    """
    k = same_error_count(spec)
    finished = sum(counts[s] for s in _FAILED)
    done = counts[TrialState.COMPLETED.value] + counts[TrialState.PRUNED.value]
    if spec.objective is None or done or finished != k:
        return False
    rows = _first_failures(session, study.id, k)
    last = max((r.completed_at for r in rows if r.completed_at is not None), default=None)
    if len(rows) != k or last != study.updated_at:
        return False
    reasons = [r.reason or "" for r in rows]
    if reasons[0].startswith("lease expired"):  # the text reap_expired writes
        return False
    return len({_NUMBERS.sub("#", r).strip() for r in reasons}) == 1


def _first_failures(session: Session, study_id: int, limit: int) -> list[TrialRow]:
    return list(
        session.scalars(
            select(TrialRow)
            .where(TrialRow.study_id == study_id, TrialRow.state.in_(_FAILED))
            .order_by(TrialRow.number)
            .limit(limit)
        ).all()
    )


def public_completion_reason(session: Session, study: StudyRow, spec: StudySpec) -> str | None:
    """``completion_reason`` as the API shows it: the stored code, and for a same-error
    stop the error itself (read from the first failed trial)."""
    if study.completion_reason != SAME_ERROR:
        return study.completion_reason
    first = _first_failures(session, study.id, 1)
    text = ((first[0].reason if first else None) or "no reason given")[:500]
    return f"{SAME_ERROR}: the first {same_error_count(spec)} trials all failed with: {text}"
