"""The suggest use case: hand a client its own unfinished trials, then paused trials the
early-stopping rule promotes, then queued ones, then new points from the study's
algorithm, all under the study's row lock."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from weakref import WeakKeyDictionary

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ...core.algorithms import SuggestRequest, create_algorithm
from ...core.decisions import NewParams, SuggestDecision
from ...core.errors import InvalidSpec
from ...core.study import StudySpec
from ...core.trials import IN_FLIGHT_STATES, StudyState, Trial, TrialState
from ..db.engine import Database
from ..db.models import StudyRow, TrialRow
from ..db.repository import (
    get_study_row,
    load_trials,
    measurements_of,
    spec_of,
    state_counts,
    to_trial,
    utcnow,
)
from .history import HistoryCache
from .lifecycle import (
    RUNNING_STATES,
    Scope,
    activate,
    apply_decision,
    budget_used,
    lease_until,
    reap_expired,
    refresh_study_state,
)
from .managed import claim_dispatch
from .promotions import model_view, promotable, study_rule
from .warm_start import prior_trials

MAX_SUGGEST_COUNT = 1000
_histories: WeakKeyDictionary[Engine, HistoryCache] = WeakKeyDictionary()
_histories_lock = threading.Lock()


def history_of(session: Session) -> HistoryCache:
    """The finished-trials cache of the database this session talks to."""
    engine = session.get_bind().engine
    with _histories_lock:
        return _histories.setdefault(engine, HistoryCache())


def check_count(count: int) -> None:
    if not 1 <= count <= MAX_SUGGEST_COUNT:
        raise InvalidSpec(f"must be between 1 and {MAX_SUGGEST_COUNT}, got {count}", field="count")


def suggest(
    db: Database, study_id: int, count: int, client_id: str | None
) -> tuple[list[Trial], StudyState]:
    """Trials for one worker; an empty list with the study's state when there is no work."""
    check_count(count)
    with db.write() as session:
        study = get_study_row(session, study_id, lock=True)
        spec = spec_of(study)
        now = utcnow()
        reap_expired(session, study, spec, now)
        refresh_study_state(session, study, spec, now)
        claim_dispatch(session, study.id, client_id, now)
        if study.state != StudyState.ACTIVE.value:
            # docs/api.md: no work; "paused" (may resume) or "completed" (never again)
            return [], StudyState(study.state)
        rows = _own_unfinished(session, study, spec, client_id, count, now)
        if len(rows) < count:
            rows += _new_work(session, study, spec, count - len(rows), client_id, now)
        refresh_study_state(session, study, spec, now)
        session.flush()
        ms = measurements_of(session, [r.id for r in rows])
        return [to_trial(r, ms.get(r.id, ())) for r in rows], StudyState(study.state)


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


def _new_work(
    session: Session,
    study: StudyRow,
    spec: StudySpec,
    need: int,
    client_id: str | None,
    now: datetime,
) -> list[TrialRow]:
    counts = state_counts(session, study.id)
    room = need
    if spec.max_active_trials is not None:
        running = sum(counts[s.value] for s in RUNNING_STATES)
        room = min(room, spec.max_active_trials - running)
    if room <= 0:
        return []
    scope = Scope(session, study, spec, now, client_id)
    # promoted paused trials first (same number and params, resume_from_step set)
    handed = [apply_decision(scope, d) for d in promotable(session, study, spec)[:room]]
    if len(handed) < room and counts[TrialState.REQUESTED.value]:
        handed += _pop_requested(session, study, spec, room - len(handed), client_id, now)
    remaining = room - len(handed)
    if spec.max_trials is not None:
        remaining = min(remaining, spec.max_trials - budget_used(counts))
    members = study_rule(spec).member_limit()
    if members is not None:  # pbt: the population; a failed member's place is free again
        remaining = min(remaining, members - budget_used(counts))
    if remaining > 0 and not study.search_exhausted:
        for decision in _ask_algorithm(session, study, spec, remaining):
            handed.append(apply_decision(scope, decision))
    return handed


def _pop_requested(
    session: Session,
    study: StudyRow,
    spec: StudySpec,
    limit: int,
    client_id: str | None,
    now: datetime,
) -> list[TrialRow]:
    rows = session.scalars(
        select(TrialRow)
        .where(TrialRow.study_id == study.id, TrialRow.state == TrialState.REQUESTED.value)
        .order_by(TrialRow.number)
        .limit(limit)
        .with_for_update()
    ).all()
    for row in rows:
        activate(study, row, spec, client_id, now)
    return list(rows)


def _ask_algorithm(
    session: Session, study: StudyRow, spec: StudySpec, count: int
) -> Sequence[SuggestDecision]:
    """Run the study's algorithm on its history and in-flight trials; save its state.

    Under a rule that feeds the algorithm (``bohb``) the history is the rule's view.

    New parameter sets are checked against the space before they become trials.
    """
    session.flush()
    view = model_view(session, study, spec)
    if view is None:
        completed = history_of(session).finished(session, study.id, study.history_version)
        in_flight = tuple(load_trials(session, study.id, IN_FLIGHT_STATES))
    else:  # BOHB: the trials at the largest well-observed budget
        completed, in_flight = view
    completed = (*prior_trials(session, study, spec), *completed)  # warm start
    request = SuggestRequest(
        space=spec.space,
        metrics=spec.metrics,
        completed=completed,
        in_flight=in_flight,
        count=count,
        seed=spec.seed,
        state=study.algorithm_state,
    )
    algorithm = create_algorithm(spec.algorithm, spec.algorithm_options, spec.space)
    suggestion = algorithm.suggest(request)
    study.algorithm_state = dict(suggestion.state) if suggestion.state is not None else None
    if suggestion.exhausted:
        study.search_exhausted = True
    return [
        NewParams(spec.space.validate_params(d.params, "suggestion"))
        if isinstance(d, NewParams)
        else d
        for d in suggestion.decisions[:count]
    ]
