"""The one writer of trial and study states.

Engine code decides (:mod:`tuneforge.core.decisions`); :func:`apply_decision`
applies a decision to the study's rows, and the service's events (a worker
completes or fails a trial, a lease runs out, a user stops a trial or pauses a
study) go through the functions below. Every state they write passes the
transition tables of :mod:`tuneforge.core.trials` first, in
:func:`_write_trial_state` and :func:`_write_study_state`; no other code
assigns a trial's or a study's state (tests/unit/test_state_writes.py checks
this on the source). Every function runs inside the caller's transaction with
the study row already locked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from ...core.decisions import (
    Continue,
    Decision,
    NewParams,
    Pause,
    Prune,
    ResumeTrial,
    WorkerAction,
)
from ...core.errors import Conflict
from ...core.study import StudySpec
from ...core.trials import (
    BUDGET_STATES,
    IN_FLIGHT_STATES,
    StudyState,
    TrialState,
    check_study_transition,
    check_transition,
)
from ..db.models import StudyRow, TrialRow
from ..db.repository import counts_of, for_update, get_trial_row
from .promotions import promotable, study_rule
from .same_error import SAME_ERROR, first_trials_failed_alike, may_have_failed_alike
from .summary import count_move, record_best

RUNNING_STATES = (TrialState.ACTIVE, TrialState.STOPPING)
#: The running states as stored in the ``state`` column.
RUNNING_VALUES = frozenset(s.value for s in RUNNING_STATES)

#: ``TrialRow.stop_source`` values: who asked a running trial to stop, and what it becomes.
STOP_BY_RULE = "rule"  # completing it prunes it
PAUSE_BY_RULE = "rule:pause"  # completing it pauses it (it may be promoted later)
STOP_BY_USER = "user"  # completing it completes it


def _write_trial_state(study: StudyRow, row: TrialRow, target: TrialState) -> None:
    """The only assignment of a trial's state: checked against the transition table, and
    counted in the study's summary in the same transaction."""
    old = TrialState(row.state)
    check_transition(old, target, row.number)
    row.state = target.value
    count_move(study, old, target)
    mark_touched(study, row)


def mark_touched(study: StudyRow, row: TrialRow) -> None:
    """The trial's state, values or measurements changed: it gets the study's next
    version as ``touched_seq`` (readers of the rules' view reload only such trials)."""
    study.version = (study.version or 0) + 1
    row.touched_seq = study.version


def _write_study_state(study: StudyRow, target: StudyState, reason: str | None) -> None:
    """The only assignment of a study's state: checked against the study transition table."""
    check_study_transition(StudyState(study.state), target, study.id)
    study.state = target.value
    study.completion_reason = reason if target == StudyState.COMPLETED else None


def touch(study: StudyRow, now: datetime) -> None:
    """Record that the study's trials changed (moves the cache version forward)."""
    study.updated_at = now
    study.version = (study.version or 0) + 1


def lease_until(spec: StudySpec, now: datetime) -> datetime:
    return now + timedelta(seconds=spec.retries.lease_seconds)


class Leased(Protocol):
    """What :func:`lease_expired` reads of a trial: a ``TrialRow``, or a row read without
    the ORM (api/services/lease_calls.py)."""

    @property
    def state(self) -> str: ...

    @property
    def lease_expires_at(self) -> datetime | None: ...


def lease_expired(row: Leased, now: datetime) -> bool:
    """Whether the running trial's lease ran out before ``now``."""
    running = row.state in RUNNING_VALUES
    return running and row.lease_expires_at is not None and row.lease_expires_at < now


# ---- decisions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Where a decision applies: a locked study, its spec, the time and the asking client."""

    session: Session
    study: StudyRow
    spec: StudySpec
    now: datetime
    client_id: str | None = None


def apply_decision(scope: Scope, decision: Decision, trial: TrialRow | None = None) -> TrialRow:
    """Apply one engine decision; return the trial it concerns (new for :class:`NewParams`).

    - :class:`NewParams`: a new trial, handed to ``scope.client_id`` (active, leased);
    - :class:`ResumeTrial`: paused trial ``number`` handed back with ``resume_from_step``;
    - :class:`Pause` / :class:`Prune` on ``trial``: it becomes ``stopping``, and once the
      worker completes it, ``paused`` or ``pruned`` (see :func:`complete`);
    - :class:`Continue`: ``trial`` goes on unchanged;
    - :class:`WorkerAction`: ``trial`` goes on (its state unchanged); an ``exploit`` (PBT)
      sets its params and records the step in ``metadata.pbt_history`` (:func:`_exploit`).
    """
    if isinstance(decision, NewParams):
        params = dict(decision.params)
        return start_trial(
            scope.session, scope.study, scope.spec, params, scope.client_id, scope.now
        )
    if isinstance(decision, ResumeTrial):
        return _resume(scope, decision)
    if trial is None:
        raise ValueError(f"{type(decision).__name__} needs the trial it decides on")
    if isinstance(decision, Pause | Prune):
        source = PAUSE_BY_RULE if isinstance(decision, Pause) else STOP_BY_RULE
        _request_stop(scope.study, trial, source, decision.reason, scope.now)
    elif isinstance(decision, WorkerAction):
        if decision.kind == EXPLOIT:
            _exploit(scope, trial, decision)
    elif not isinstance(decision, Continue):
        raise TypeError(f"not a decision: {decision!r}")
    return trial


#: ``WorkerAction.kind`` of PBT's exploit/explore step; the metadata key of its record.
EXPLOIT = "exploit"
PBT_HISTORY = "pbt_history"


def _exploit(scope: Scope, trial: TrialRow, action: WorkerAction) -> None:
    """PBT's exploit/explore: the trial takes the action's params (checked against the
    space) and its ``metadata.pbt_history`` gains the step, the donor and both param sets."""
    params = scope.spec.space.validate_params(action.details["params"], "action.params")
    entry = {
        "step": int(action.details["step"]),
        "type": EXPLOIT,
        "from_trial": int(action.details["from_trial"]),
        "old_params": dict(trial.params),
        "params": params,
        "reason": action.reason,
    }
    metadata = dict(trial.metadata_ or {})
    metadata[PBT_HISTORY] = [*metadata.get(PBT_HISTORY, []), entry]
    trial.metadata_ = metadata
    trial.params = params
    trial.updated_at = scope.now
    touch(scope.study, scope.now)


def recorded_action(trial: TrialRow, step: int) -> dict[str, Any] | None:
    """The action the reply to ``step`` carried, for a re-sent measurement (``None`` if none)."""
    for entry in (trial.metadata_ or {}).get(PBT_HISTORY, []):
        if entry.get("step") == step:
            keys = ("type", "from_trial", "params", "step")
            return {key: entry[key] for key in keys}
    return None


def _resume(scope: Scope, decision: ResumeTrial) -> TrialRow:
    row = get_trial_row(scope.session, scope.study.id, decision.number, lock=True)
    if row.state != TrialState.PAUSED.value:
        raise Conflict(
            f"trial {row.number} is {row.state}; only a paused trial can be resumed",
            details={"trial_state": row.state},
        )
    activate(scope.study, row, scope.spec, scope.client_id, scope.now)
    row.resume_from_step = decision.from_step
    row.stop_source = None
    row.reason = decision.reason
    touch(scope.study, scope.now)
    return row


# ---- trial events -----------------------------------------------------------------------


class RowSink(Protocol):
    """Where :func:`new_trial` puts a new trial: a session, or a collector of rows that
    are written without one (api/services/detached.py)."""

    def add(self, instance: object) -> None: ...


def start_trial(
    sink: RowSink,
    study: StudyRow,
    spec: StudySpec,
    params: dict[str, Any],
    client_id: str | None,
    now: datetime,
) -> TrialRow:
    """A new trial of ``params`` handed at once to ``client_id`` (active, leased)."""
    row = new_trial(sink, study, params, now)
    activate(study, row, spec, client_id, now)
    return row


def new_trial(
    session: RowSink,
    study: StudyRow,
    params: dict[str, Any],
    now: datetime,
    **fields: Any,
) -> TrialRow:
    """Insert a ``requested`` trial with the next number of the study's counter."""
    number = study.trial_counter or 0
    study.trial_counter = number + 1
    row = TrialRow(
        study_id=study.id,
        number=number,
        state=TrialState.REQUESTED.value,
        params=params,
        metadata_=fields.pop("metadata_", {}),
        attempt=fields.pop("attempt", 0),
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(row)
    count_move(study, None, TrialState.REQUESTED)
    touch(study, now)
    row.touched_seq = study.version
    return row


def activate(
    study: StudyRow, row: TrialRow, spec: StudySpec, client_id: str | None, now: datetime
) -> None:
    """Hand a queued (or paused) trial to a client with a fresh lease."""
    _write_trial_state(study, row, TrialState.ACTIVE)
    row.client_id = client_id
    row.started_at = row.started_at or now
    row.lease_expires_at = lease_until(spec, now)
    row.updated_at = now


def request_user_stop(study: StudyRow, row: TrialRow, now: datetime) -> None:
    """A user asked a running trial to stop; completing it afterwards completes it."""
    _request_stop(study, row, STOP_BY_USER, "stop requested", now)


def _request_stop(study: StudyRow, row: TrialRow, source: str, reason: str, now: datetime) -> None:
    """Tell the worker to stop (its next reply says so); ``source`` says what it becomes."""
    _write_trial_state(study, row, TrialState.STOPPING)
    row.stop_source = source
    row.reason = reason
    row.updated_at = now
    touch(study, now)


def complete(
    study: StudyRow, row: TrialRow, values: dict[str, float], now: datetime, reason: str | None
) -> None:
    """The worker reports a trial's final values: ``completed``, or ``pruned`` / ``paused``
    when the early-stopping rule stopped it."""
    if row.stop_source == PAUSE_BY_RULE:
        _write_trial_state(study, row, TrialState.PAUSED)
        row.values = values
        row.lease_expires_at = None
        row.updated_at = now
        touch(study, now)
        return
    pruned = row.stop_source == STOP_BY_RULE
    row.values = values
    finish(study, row, TrialState.PRUNED if pruned else TrialState.COMPLETED, now, reason)


def finish(
    study: StudyRow, row: TrialRow, target: TrialState, now: datetime, reason: str | None = None
) -> None:
    """Move a trial to a finished state (the transition is checked first).

    ``finished_seq`` takes the study's next version, so readers can fetch the
    trials finished since any point without relying on clocks; the study's
    ``history_version`` records it. A completed trial (its values set before) is
    folded into the study's best trials.
    """
    _write_trial_state(study, row, target)
    row.completed_at = now
    row.updated_at = now
    row.lease_expires_at = None
    if reason is not None:
        row.reason = reason
    touch(study, now)
    row.finished_seq = study.version
    study.history_version = study.version
    if target == TrialState.COMPLETED:
        record_best(object_session(study), study, row)


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
        now,
        retry_of=row.number,
        attempt=row.attempt + 1,
        # the retry trains from scratch: the failed trial's exploits are not its history
        metadata_={k: v for k, v in (row.metadata_ or {}).items() if k != PBT_HISTORY},
    )


def reap_expired(session: Session, study: StudyRow, spec: StudySpec, now: datetime) -> int:
    """Fail (and retry) every running trial of the study whose lease has run out."""
    rows = session.scalars(
        for_update(
            select(TrialRow)
            .where(
                TrialRow.study_id == study.id,
                TrialRow.state.in_([s.value for s in RUNNING_STATES]),
                TrialRow.lease_expires_at < now,
            )
            .order_by(TrialRow.number)
        )
    ).all()
    for row in rows:
        expired = row.lease_expires_at
        reason = f"lease expired at {expired.isoformat() if expired else 'unknown'} (no heartbeat)"
        fail_trial(session, study, spec, row, reason, retry=True, now=now)
    return len(rows)


def budget_used(counts: dict[str, int]) -> int:
    return sum(counts[s.value] for s in BUDGET_STATES)


def budget_left(spec: StudySpec, counts: dict[str, int]) -> int | None:
    """How many more trials the study may start (``None``: no limit): ``max_trials`` and,
    under ``pbt``, the population (a failed member's place is free again)."""
    limits = [spec.max_trials, study_rule(spec).member_limit()]
    used = budget_used(counts)
    left = [limit - used for limit in limits if limit is not None]
    return min(left) if left else None


def in_flight(counts: dict[str, int]) -> int:
    return sum(counts[s.value] for s in IN_FLIGHT_STATES)


def new_study(
    session: Session, project_id: int, spec: StudySpec, *, managed: bool, now: datetime
) -> StudyRow:
    """Insert an ``active`` study row for ``spec``."""
    row = StudyRow(
        project_id=project_id,
        name=spec.name,
        state=StudyState.ACTIVE.value,
        spec=spec.to_dict(),
        trial_counter=0,
        search_exhausted=False,
        version=0,
        best_trials=[],
        managed=managed,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    return row


def set_study_state(session: Session, study: StudyRow, target: StudyState, now: datetime) -> None:
    """A user moves a study to ``target`` (a no-op when it is there already).

    Completing it by hand records ``completion_reason`` ``"user"`` (and prunes its
    paused trials); a move the study's transition table does not allow is a
    :class:`Conflict`.
    """
    if study.state == target.value:
        return
    if target == StudyState.COMPLETED:
        _complete_study(session, study, "user", now)
        return
    _write_study_state(study, target, None)
    touch(study, now)


def refresh_study_state(
    session: Session, study: StudyRow, spec: StudySpec, now: datetime, *, flush: bool = True
) -> None:
    """Complete an active study whose budget is spent, grid exhausted, failures too many or
    first trials all failed alike (managed studies); reopen one completed by its budget when
    the budget was raised.

    ``flush=False`` leaves the session's pending rows to its autoflush (the reads here
    flush them first; the counts are the study row's own): a caller that changes several
    trials in one transaction then writes them together at its end.

    Paused trials hold a study open only while the rule may still promote them:
    once nothing runs, the budget is spent and the rule promotes none, they are
    pruned and the study completes.
    """
    if flush:
        session.flush()
    counts = counts_of(study)
    if study.state == StudyState.ACTIVE.value and _settle_paused(session, study, spec, counts, now):
        session.flush()
        counts = counts_of(study)
    reason = completion_reason(study, spec, counts)
    if (
        study.state == StudyState.ACTIVE.value
        and reason in (None, "max_trials", "max_failed_trials")
        and first_trials_failed_alike(session, study, spec, counts)
    ):
        reason = SAME_ERROR
    if study.state == StudyState.ACTIVE.value and reason is not None:
        _complete_study(session, study, reason, now)
    elif (
        study.state == StudyState.COMPLETED.value
        and study.completion_reason in ("max_trials", "max_failed_trials")
        and reason is None
    ):
        _write_study_state(study, StudyState.ACTIVE, None)
        touch(study, now)


NOT_PROMOTED = "paused and not promoted before the study ended"


def refresh_is_idle(study: StudyRow, spec: StudySpec) -> bool:
    """Whether :func:`refresh_study_state` would neither read nor write anything now: the
    study stays as it is, decided from its row alone. A caller that writes the study's
    rows without an ORM session (api/services/completion_calls.py) goes ahead only then."""
    counts = counts_of(study)
    reason = completion_reason(study, spec, counts)
    if study.state == StudyState.COMPLETED.value:
        reopens = study.completion_reason in ("max_trials", "max_failed_trials")
        return not (reopens and reason is None)
    if study.state != StudyState.ACTIVE.value:
        return True
    return not (
        reason is not None
        or _paused_may_settle(study, spec, counts)
        or may_have_failed_alike(spec, counts)
    )


def _paused_may_settle(study: StudyRow, spec: StudySpec, counts: dict[str, int]) -> bool:
    """Whether the study's paused trials may have to be pruned now (the rule decides)."""
    if counts[TrialState.PAUSED.value] == 0:
        return False
    if any(counts[s.value] for s in (TrialState.REQUESTED, *RUNNING_STATES)):
        return False  # a running trial may still reach a rung and reorder it
    spent = spec.max_trials is not None and budget_used(counts) >= spec.max_trials
    return spent or bool(study.search_exhausted)


def _settle_paused(
    session: Session, study: StudyRow, spec: StudySpec, counts: dict[str, int], now: datetime
) -> bool:
    """Prune the paused trials when nothing can promote them any more; whether it did."""
    if not _paused_may_settle(study, spec, counts) or promotable(session, study, spec):
        return False
    _prune_paused(session, study, now, NOT_PROMOTED)
    return True


def _complete_study(session: Session, study: StudyRow, reason: str, now: datetime) -> None:
    _write_study_state(study, StudyState.COMPLETED, reason)
    _prune_paused(session, study, now, NOT_PROMOTED)
    touch(study, now)


def _prune_paused(session: Session, study: StudyRow, now: datetime, reason: str) -> None:
    rows = session.scalars(
        for_update(
            select(TrialRow)
            .where(TrialRow.study_id == study.id, TrialRow.state == TrialState.PAUSED.value)
            .order_by(TrialRow.number)
        )
    ).all()
    for row in rows:
        finish(study, row, TrialState.PRUNED, now, reason)


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
    members = study_rule(spec).member_limit()
    if members is not None and budget_used(counts) >= members:
        return "population_trained"
    return None
