"""Trial use cases: queue or add trials, measurements with the early-stopping
decision, heartbeats, completion, failure and stop requests.

Every write locks the study row and then the trial row (always in that order,
so two writers never deadlock) and checks the trial's state before changing it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.decisions import Continue, TrialDecision, WorkerAction
from ...core.errors import Conflict, InvalidSpec
from ...core.stopping import StoppingContext, StoppingRule
from ...core.study import StudySpec
from ...core.trials import StudyState, Trial, TrialState, check_metric_values
from ..db.engine import Database
from ..db.models import MeasurementRow, StudyRow, TrialRow
from ..db.repository import (
    add_measurement_if_new,
    get_study_row,
    get_trial_row,
    measurements_by_number,
    measurements_of,
    spec_of,
    state_counts,
    to_trial,
    trial_and_spec,
    utcnow,
)
from . import lease_calls
from .hints import StudyHints
from .lifecycle import (
    Scope,
    apply_decision,
    budget_used,
    fail_trial,
    finish,
    lease_expired,
    lease_until,
    mark_touched,
    new_trial,
    reap_expired,
    recorded_action,
    refresh_study_state,
    request_user_stop,
    touch,
)
from .peers import SqlPeerView
from .promotions import rule_trials, study_rule

MAX_STEP = 2**31 - 1
MAX_REASON = 10_000


@dataclass(frozen=True)
class MeasureReply:
    should_stop: bool
    trial_state: TrialState
    action: Mapping[str, Any] | None = None
    #: The smallest step above the reported one at which the study's rule could decide
    #: anything for the trial; None: at no later step (or the trial is no longer active).
    next_decision_step: int | None = None


@dataclass
class LockedTrial:
    """A trial and its study under their row locks, in one write transaction
    (:func:`locked_trial`)."""

    session: Session
    study: StudyRow
    spec: StudySpec
    trial: TrialRow
    now: datetime
    #: The trial's measurements read before the lock (``locked_trial(curve=True)``).
    curve: list[MeasurementRow] | None = None


@contextmanager
def locked_trial(
    db: Database, study_id: int, number: int, *, curve: bool = False
) -> Iterator[LockedTrial]:
    """Lock study then trial; fail the trial first if its lease already ran out.

    With ``curve`` the trial's measurements are read first, before the study lock, so
    that the reply's copy of them costs the study's other callers no wait: the lock is
    held for the bookkeeping alone (a step reported at the same moment as the call may
    be missing from that reply; it is stored all the same)."""
    with db.write() as session:
        before = measurements_by_number(session, study_id, number) if curve else None
        study = get_study_row(session, study_id, lock=True)
        spec = spec_of(study)
        trial = get_trial_row(session, study_id, number, lock=True)
        now = utcnow()
        if lease_expired(trial, now):
            reap_expired(session, study, spec, now)
            refresh_study_state(session, study, spec, now)
            session.commit()  # the expiry stands even though this request is refused
            raise Conflict(
                f"trial {number} lost its lease and was failed ({trial.reason})",
                details={"trial_state": trial.state},
            )
        yield LockedTrial(session, study, spec, trial, now, before)


def _trial_out(session: Session, row: TrialRow) -> Trial:
    session.flush()
    return to_trial(row, measurements_of(session, [row.id]).get(row.id, ()))


def locked_reply(ctx: LockedTrial) -> Trial:
    """The locked trial as the reply shows it, its measurements as read before the lock
    when they were (:func:`locked_trial`), else read now."""
    if ctx.curve is None:
        return _trial_out(ctx.session, ctx.trial)
    return to_trial(ctx.trial, ctx.curve)


def _require_running(row: TrialRow, action: str) -> None:
    state = TrialState(row.state)
    if state.is_finished:
        raise Conflict(
            f"trial {row.number} is already {state.value}; cannot {action}",
            details={"trial_state": state.value},
        )
    if state not in (TrialState.ACTIVE, TrialState.STOPPING):
        raise Conflict(
            f"trial {row.number} is {state.value}; only an active trial can {action}",
            details={"trial_state": state.value},
        )


def check_reason(reason: Any, field: str = "reason") -> str | None:
    """A client's ``reason`` text, checked (422 naming ``field``)."""
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise InvalidSpec(f"must be a string of at most {MAX_REASON} characters", field=field)
    return reason


#: Largest ``metadata`` a completion may add, as JSON.
MAX_METADATA_BYTES = 64 * 1024


def check_metadata(metadata: Any) -> dict[str, Any]:
    """A client's ``metadata`` object, checked (422 naming the field: an object of JSON
    values within :data:`MAX_METADATA_BYTES`)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidSpec("must be an object", field="metadata")
    try:
        size = len(json.dumps(metadata, allow_nan=False))
    except ValueError:
        raise InvalidSpec("must hold finite numbers only", field="metadata") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidSpec(f"must be at most {MAX_METADATA_BYTES} bytes as JSON", field="metadata")
    return dict(metadata)


def create_trial(
    db: Database,
    study_id: int,
    params: Any,
    state: str,
    values: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> Trial:
    """Queue a parameter set (``requested``) or add an already evaluated one (``completed``)."""
    if state not in ("requested", "completed"):
        raise InvalidSpec("must be 'requested' or 'completed'", field="state")
    with db.write() as session:
        study = get_study_row(session, study_id, lock=True)
        spec = spec_of(study)
        clean = spec.space.validate_params(params)
        now = utcnow()
        checked = None
        if state == "requested":
            _check_room_for_request(session, study, spec)
        else:
            checked = check_metric_values(values, spec.metrics, require_all=True)
        row = new_trial(session, study, clean, now, metadata_=dict(metadata or {}))
        if checked is not None:
            row.values = checked
            finish(study, row, TrialState.COMPLETED, now)
        refresh_study_state(session, study, spec, now)
        return _trial_out(session, row)


def _check_room_for_request(session: Session, study: StudyRow, spec: StudySpec) -> None:
    if study.state != StudyState.ACTIVE.value:
        raise Conflict(f"study {study.id} is {study.state}; reopen it before queueing trials")
    if (
        spec.max_trials is not None
        and budget_used(state_counts(session, study.id)) >= spec.max_trials
    ):
        raise Conflict(f"study {study.id} has used its max_trials budget ({spec.max_trials})")
    members = study_rule(spec).member_limit()
    if members is not None and budget_used(state_counts(session, study.id)) >= members:
        raise Conflict(f"study {study.id} has its whole population ({members} trials) already")


@dataclass(frozen=True)
class Reported:
    """One measurement of a report's ``earlier`` batch (validated by :func:`add_measurement`)."""

    step: Any
    values: Any
    elapsed_seconds: Any = None


#: How many ``earlier`` measurements one report may carry.
MAX_EARLIER = 1000


def add_measurement(
    db: Database,
    study_id: int,
    number: int,
    step: Any,
    values: Any,
    elapsed_seconds: Any = None,
    earlier: Sequence[Reported] | None = None,
) -> MeasureReply:
    """Store a measurement (a repeated step is a no-op) and consult the stopping rule.

    ``earlier``: measurements the worker held back (steps strictly increasing, all below
    ``step``), stored in the same transaction; the rule is consulted once, on ``step``. A
    report whose ``step`` was stored before is a repeat: nothing of it is stored."""
    _check_step(step, "step")
    _check_elapsed(elapsed_seconds, "elapsed_seconds")
    batch = _check_earlier(earlier, step)
    if not batch:  # a study without a deciding rule, on PostgreSQL: two statements, no ORM
        state = lease_calls.measurement(db, study_id, number, step, values, elapsed_seconds)
        if state is not None:
            return MeasureReply(state == TrialState.STOPPING.value, TrialState(state))
    if _trial_lock_hint.get(db, study_id) is not False:
        try:
            reply = _measure_under_trial_lock(
                db, study_id, number, step, values, elapsed_seconds, batch
            )
        except _NeedsStudyLock:
            reply = None
        if reply is not None:
            return reply
    with locked_trial(db, study_id, number) as ctx:
        rule = study_rule(ctx.spec)
        _note_trial_lock(db, study_id, rule)
        row = ctx.trial
        decides = rule.decides and row.state == TrialState.ACTIVE.value
        curve = _store_measurement(
            ctx.session, ctx.spec, row, step, values, elapsed_seconds, ctx.now, batch, curve=decides
        )
        if curve is None:
            return _repeated(rule, row, step)
        touch(ctx.study, ctx.now)
        mark_touched(ctx.study, row)
        if decides:
            return _consult_rule(ctx, curve, step)
        return _continued(rule, row, step)


def _check_step(step: Any, field: str) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise InvalidSpec(f"must be an integer in [0, {MAX_STEP}]", field=field)


def _check_elapsed(elapsed: Any, field: str) -> None:
    if elapsed is not None and (
        isinstance(elapsed, bool) or not isinstance(elapsed, int | float) or not 0 <= elapsed < 1e12
    ):
        raise InvalidSpec("must be a finite number of seconds >= 0", field=field)


def _check_earlier(earlier: Sequence[Reported] | None, step: int) -> tuple[Reported, ...]:
    """The ``earlier`` batch checked: at most :data:`MAX_EARLIER`, each step an integer below
    the next one's (the last one's below ``step``), each elapsed time valid. Values are checked
    against the study's metrics once the study is read."""
    if not earlier:
        return ()
    if len(earlier) > MAX_EARLIER:
        raise InvalidSpec(f"must hold at most {MAX_EARLIER} measurements", field="earlier")
    batch = tuple(earlier)
    before = -1
    for i, item in enumerate(batch):
        field = f"earlier[{i}].step"
        _check_step(item.step, field)
        if item.step <= before:
            raise InvalidSpec(
                f"must be greater than earlier[{i - 1}].step ({before}): steps increase",
                field=field,
            )
        if item.step >= step:
            raise InvalidSpec(f"must be below the report's step ({step})", field=field)
        _check_elapsed(item.elapsed_seconds, f"earlier[{i}].elapsed_seconds")
        before = item.step
    return batch


#: Per study, a hint: False once a measurement found that its rule reads every
#: trial's steps, so the next ones go straight to the study lock. A wrong hint costs
#: one transaction, never a result.
_trial_lock_hint = StudyHints()


def _note_trial_lock(db: Database, study_id: int, rule: StoppingRule) -> bool:
    """Whether the study's measurements may run under the trial lock alone (noted)."""
    alone = not (rule.promotes or rule.sees_trials or rule.exploits)
    return _trial_lock_hint.note(db, study_id, alone)


class _NeedsStudyLock(Exception):
    """The measurement changes the study (a lease to reap, a decision to apply): redo it
    with the study row locked."""


def _measure_under_trial_lock(
    db: Database,
    study_id: int,
    number: int,
    step: int,
    values: Any,
    elapsed: Any,
    batch: Sequence[Reported],
) -> MeasureReply | None:
    """A measurement that leaves the study row alone, under the trial's lock only, so a
    study's trials report in parallel. Rules that read every trial's measurements (they
    need each step stamped with the study's version: ``asha``, ``hyperband``, ``bohb``,
    ``pbt``, ``wilcoxon``) return None; a run-out lease or a decision other than
    ``continue`` raises :class:`_NeedsStudyLock`, rolling this transaction back."""
    with db.write() as session:
        row, spec = trial_and_spec(session, study_id, number)
        rule = study_rule(spec)
        if not _note_trial_lock(db, study_id, rule):
            return None
        now = utcnow()
        if lease_expired(row, now):
            raise _NeedsStudyLock
        decides = rule.decides and row.state == TrialState.ACTIVE.value
        curve = _store_measurement(
            session, spec, row, step, values, elapsed, now, batch, curve=decides
        )
        if curve is None:
            return _repeated(rule, row, step)
        if decides:
            decision = _rule_decision(session, study_id, spec, row, curve)
            if not isinstance(decision, Continue):
                raise _NeedsStudyLock
        return _continued(rule, row, step)


def _store_measurement(
    session: Session,
    spec: StudySpec,
    row: TrialRow,
    step: int,
    values: Any,
    elapsed: Any,
    now: datetime,
    batch: Sequence[Reported] = (),
    *,
    curve: bool,
) -> list[MeasurementRow] | None:
    """Add the step's measurement (and the ``batch`` of earlier ones not stored yet) to the
    running trial and extend its lease; None when the step was reported before (a retried
    report: nothing changes).

    With ``curve`` (a rule will decide on the trial's curve) the trial's measurements,
    these included, come back in step order: one read both finds a repeated step and
    gives the rule its curve. Without it the list is empty and the repeat check costs no
    read of its own: a single report is inserted unless its step exists (one statement),
    a report with ``batch`` reads which of its steps exist."""
    checked = check_metric_values(values, spec.metrics, require_all=False)
    early = [
        check_metric_values(m.values, spec.metrics, f"earlier[{i}].values", require_all=False)
        for i, m in enumerate(batch)
    ]
    _require_running(row, "report measurements")
    if not curve and not batch:  # the common report: the repeat check is the insert's
        new = _measurement_row(row, step, elapsed, checked, now)
        if not add_measurement_if_new(session, new, row, lease_until(spec, now)):
            return None
        return []
    stored: list[MeasurementRow] = []
    if curve:
        stored = measurements_of(session, [row.id]).get(row.id, [])
        seen = {m.step for m in stored}
    else:
        steps = [step, *(m.step for m in batch)]
        seen = set(
            session.scalars(
                select(MeasurementRow.step).where(
                    MeasurementRow.trial_id == row.id, MeasurementRow.step.in_(steps)
                )
            )
        )
    if step in seen:
        return None
    points = [*zip(batch, early, strict=True), (Reported(step, values, elapsed), checked)]
    added = [
        _measurement_row(row, m.step, m.elapsed_seconds, clean, now)
        for m, clean in points
        if m.step not in seen
    ]
    session.add_all(added)
    _extend_lease(spec, row, now)
    return sorted([*stored, *added], key=lambda m: m.step) if curve else stored


def _measurement_row(
    row: TrialRow, step: int, elapsed: Any, values: dict[str, float], now: datetime
) -> MeasurementRow:
    return MeasurementRow(
        trial_id=row.id,
        step=step,
        study_id=row.study_id,
        values=values,
        elapsed_seconds=float(elapsed) if elapsed is not None else None,
        created_at=now,
    )


def _extend_lease(spec: StudySpec, row: TrialRow, now: datetime) -> None:
    row.lease_expires_at = lease_until(spec, now)
    row.updated_at = now


def _next_step(rule: StoppingRule, row: TrialRow, step: int) -> int | None:
    """The reply's ``next_decision_step``: the rule's, for a trial that is still active."""
    if row.state != TrialState.ACTIVE.value:
        return None
    return rule.next_decision_step(to_trial(row), step)


def _continued(rule: StoppingRule, row: TrialRow, step: int) -> MeasureReply:
    """The reply to a stored measurement that changed nothing but the trial's curve."""
    return MeasureReply(
        row.state == TrialState.STOPPING.value,
        TrialState(row.state),
        next_decision_step=_next_step(rule, row, step),
    )


def _repeated(rule: StoppingRule, row: TrialRow, step: int) -> MeasureReply:
    """The reply to a step reported again: the trial's state and the step's recorded action."""
    return MeasureReply(
        row.state == TrialState.STOPPING.value,
        TrialState(row.state),
        recorded_action(row, step),
        _next_step(rule, row, step),
    )


def _rule_decision(
    session: Session,
    study_id: int,
    spec: StudySpec,
    row: TrialRow,
    curve: Sequence[MeasurementRow],
) -> TrialDecision:
    """The early-stopping rule's decision on the trial's newest measurement (``curve``:
    the trial's measurements in step order, the newest included)."""
    rule = study_rule(spec)
    metric = rule.watched(spec.objectives)
    trial = to_trial(row, curve)
    peers = SqlPeerView(session, study_id, metric, row.id)
    needs = rule.needs_others(trial, metric)
    others = tuple(rule_trials(session, study_id, trial.number)) if needs else ()
    return rule.decide(
        StoppingContext(trial=trial, metric=metric, peers=peers, others=others, space=spec.space)
    )


def _consult_rule(ctx: LockedTrial, curve: Sequence[MeasurementRow], step: int) -> MeasureReply:
    """Apply the rule's decision on the active trial's newest measurement."""
    decision = _rule_decision(ctx.session, ctx.study.id, ctx.spec, ctx.trial, curve)
    apply_decision(Scope(ctx.session, ctx.study, ctx.spec, ctx.now), decision, ctx.trial)
    action = decision.to_wire() if isinstance(decision, WorkerAction) else None
    after = _next_step(study_rule(ctx.spec), ctx.trial, step)
    return MeasureReply(decision.should_stop, TrialState(ctx.trial.state), action, after)


def heartbeat(db: Database, study_id: int, number: int) -> MeasureReply:
    """Extend a running trial's lease; the reply says whether it should stop."""
    state = lease_calls.heartbeat(db, study_id, number)  # PostgreSQL: the trial lock alone
    if state is not None:
        return MeasureReply(state == TrialState.STOPPING.value, TrialState(state))
    with locked_trial(db, study_id, number) as ctx:
        _require_running(ctx.trial, "send heartbeats")
        ctx.trial.lease_expires_at = lease_until(ctx.spec, ctx.now)
        ctx.trial.updated_at = ctx.now
        return MeasureReply(
            ctx.trial.state == TrialState.STOPPING.value, TrialState(ctx.trial.state)
        )


def fail_trial_request(db: Database, study_id: int, number: int, reason: Any, retry: bool) -> Trial:
    """An infrastructure failure reported by the worker; retried while the budget lasts."""
    reason = check_reason(reason) or "failed"
    with locked_trial(db, study_id, number, curve=True) as ctx:
        fail_trial(ctx.session, ctx.study, ctx.spec, ctx.trial, reason, retry=retry, now=ctx.now)
        refresh_study_state(ctx.session, ctx.study, ctx.spec, ctx.now)
        return locked_reply(ctx)


def stop_trial(db: Database, study_id: int, number: int) -> Trial:
    """Ask the worker running a trial to stop; its next report or heartbeat says so."""
    with locked_trial(db, study_id, number) as ctx:
        row = ctx.trial
        if row.state != TrialState.STOPPING.value:
            _require_running(row, "be stopped")
            request_user_stop(ctx.study, row, ctx.now)
        return _trial_out(ctx.session, row)


def get_trial(db: Database, study_id: int, number: int) -> Trial:
    with db.read() as session:
        get_study_row(session, study_id)
        row = get_trial_row(session, study_id, number)
        return to_trial(row, measurements_of(session, [row.id]).get(row.id, ()))


def list_trials(
    db: Database,
    study_id: int,
    *,
    state: TrialState | None,
    updated_after: datetime | None,
    after_number: int | None,
    client_id: str | None = None,
    page_size: int,
) -> tuple[list[Trial], int | None]:
    """One page of trials ordered by number; returns the trials and the last number if more."""
    with db.read() as session:
        get_study_row(session, study_id)
        stmt = select(TrialRow).where(TrialRow.study_id == study_id)
        if state is not None:
            stmt = stmt.where(TrialRow.state == state.value)
        if updated_after is not None:
            stmt = stmt.where(TrialRow.updated_at > updated_after)
        if after_number is not None:
            stmt = stmt.where(TrialRow.number > after_number)
        if client_id is not None:
            stmt = stmt.where(TrialRow.client_id == client_id)
        rows = session.scalars(stmt.order_by(TrialRow.number).limit(page_size + 1)).all()
        more = len(rows) > page_size
        rows = rows[:page_size]
        ms = measurements_of(session, [r.id for r in rows])
        trials = [to_trial(r, ms.get(r.id, ())) for r in rows]
        return trials, (rows[-1].number if more and rows else None)
