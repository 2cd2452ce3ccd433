"""New points from the study's algorithm: a snapshot, the fit outside any lock or
transaction, then a short locked write that claims numbers and checks the snapshot.

1. **Snapshot** (reads that never wait on SQLite's WAL nor on PostgreSQL's row locks;
   on PostgreSQL outside a transaction, :meth:`.Database.read`): the study row
   (algorithm state, ``trial_counter``, ``history_version``, counts), the finished
   history from the per-process cache (validated by ``history_version``: no statement
   when current), the in-flight trials and any warm-start or rule view.
2. **Fit**: ``Algorithm.suggest`` on the snapshot, holding no lock and no transaction,
   so complete, measurement, heartbeat and fail never wait for it.
3. **Claim** (a write transaction on the locked study row): the snapshot is stale when
   ``trial_counter`` or the algorithm's saved state moved (another replica claimed
   points in between: reusing the old state could repeat its points) or the room left
   by ``max_trials``/``max_active_trials`` shrank below the batch; then the fit is
   redone on a fresh snapshot. A history that only grew by completions is accepted
   for every algorithm: random, sobol and grid do not read it, and the trials that
   finished meanwhile were in flight in the snapshot, where the model-based
   algorithms already treated them as liars; the suggestion is the one the same
   request would have got a few milliseconds earlier.
   After :data:`LOCK_FREE_ATTEMPTS` stale claims in a row (only possible when another
   server process keeps claiming during each fit), the last attempt fits inside the
   claim transaction, so no caller starves. A study busy with spare points is the
   exception (:func:`.suggest_spare.reserve_busy_batch`): there the counter and the
   state move with every spare point taken and every refill, so its batch reserves
   its draws before the fit, and the claim only checks that the fit stayed inside
   them and that the study still has room.

**One fit per study at a time in each process, shared by its waiting callers.** The
first suggest of a study that needs the algorithm becomes the *leader*: it fits for
itself and for every suggest of the same study that queued up meanwhile (one batch
of ``sum(count)`` points, which the algorithms spread out on purpose, e.g. TPE's
constant liar), then hands each caller its own trials. Callers arriving during a fit
queue for the next batch, whose leader is the first of them. So a process never runs
two fits of one study that would both be stale against each other, the CPU cost
per trial falls as load rises, and the answer equals the same batch asked at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from ...core.algorithms import Suggestion, SuggestRequest, create_algorithm, get_algorithm
from ...core.algorithms.base import Reservation
from ...core.decisions import NewParams, ResumeTrial, SuggestDecision
from ...core.errors import Conflict, Temporary
from ...core.study import StudySpec
from ...core.trials import IN_FLIGHT_STATES, StudyState, Trial
from ..db.engine import Database
from ..db.models import MeasurementRow, StudyRow
from ..db.repository import (
    counts_of,
    get_study_row,
    load_trials,
    measurements_of,
    spec_of,
    to_trial,
    utcnow,
)
from . import fit_pool, suggest_spare
from .completions import completions_idle
from .group_commit import GroupCommit
from .history import HistoryCache
from .lifecycle import (
    RUNNING_STATES,
    Scope,
    apply_decision,
    budget_left,
    refresh_study_state,
)
from .promotions import model_view, study_rule
from .warm_start import prior_trials

#: Claims tried with the fit outside the lock before one fit inside the claim.
LOCK_FREE_ATTEMPTS = 3
#: Most points one shared fit hands out (more callers wait for the next batch).
BATCH_LIMIT = 256
_MODEL_ALGORITHMS = frozenset({"auto", "gp", "cmaes", "tpe"})

#: Keyed by the connection pool, which a database's read and write engines share.
_histories: WeakKeyDictionary[Pool, HistoryCache] = WeakKeyDictionary()
_histories_lock = threading.Lock()


def history_of(session: Session) -> HistoryCache:
    """The finished-trials cache of the database this session talks to."""
    pool = session.get_bind().engine.pool
    with _histories_lock:
        return _histories.setdefault(pool, HistoryCache())


@dataclass(frozen=True)
class Snapshot:
    """What the algorithm's fit starts from (see :func:`read_snapshot`)."""

    spec: StudySpec
    trial_counter: int
    algorithm_state: Any
    exhausted: bool
    request: SuggestRequest


@dataclass
class Ask:
    """One caller's share of a batch: how many new points, for which client (and the
    snapshot it read on its way in, :func:`read_snapshot`, which a batch of this ask
    alone uses for its first fit)."""

    count: int
    client_id: str | None
    snapshot: Snapshot | None = None
    trials: list[Trial] = field(default_factory=list)
    study_state: StudyState = StudyState.ACTIVE
    #: Points the study's algorithm still owes this ask after a shared bookkeeping
    #: transaction (``api/services/suggest.py``) that could not run it in the claim.
    remaining: int = 0

    def forget_snapshot(self) -> None:
        """Called when the ask queues behind another fit: that fit's claim will make the
        snapshot stale, so the ask reads a fresh one if it leads the next batch."""
        self.snapshot = None


class _Stale(Exception):
    """The snapshot no longer matches the study: fit again on a fresh one."""


# ---- the per-study batch ------------------------------------------------------------------

#: One :class:`.GroupCommit` per database for the fits and one for suggest's bookkeeping
#: transaction (:func:`claim_batcher`); a batch is weighed by the points its asks want.
_batchers: WeakKeyDictionary[Database, GroupCommit[Ask, Ask]] = WeakKeyDictionary()
_claim_batchers: WeakKeyDictionary[Database, GroupCommit[Ask, Ask]] = WeakKeyDictionary()
_batchers_lock = threading.Lock()


def _registered(
    registry: WeakKeyDictionary[Database, GroupCommit[Ask, Ask]], db: Database
) -> GroupCommit[Ask, Ask]:
    with _batchers_lock:
        batcher = registry.get(db)
        if batcher is None:
            batcher = registry[db] = GroupCommit(BATCH_LIMIT, weight=lambda a: a.count)
        return batcher


def filling(work: Callable[[Sequence[Ask]], None]) -> Callable[[Sequence[Ask]], Sequence[Ask]]:
    """A batch's work that fills its asks in place, as a :class:`.GroupCommit` work function
    (each ask is its own answer)."""

    def run(batch: Sequence[Ask]) -> Sequence[Ask]:
        work(batch)
        return batch

    return run


def _batcher(db: Database) -> GroupCommit[Ask, Ask]:
    return _registered(_batchers, db)


def claim_batcher(db: Database) -> GroupCommit[Ask, Ask]:
    """The batches of the suggest bookkeeping transaction (``api/services/suggest.py``):
    the suggests of one study that arrive while its transaction runs share the next."""
    return _registered(_claim_batchers, db)


def batch_idle(db: Database, study_id: int) -> bool:
    """Whether a suggest of the study arriving now would lead its own batch in this
    process (then a snapshot read on its way in saves the batch a transaction)."""
    return _batcher(db).idle(study_id)


def new_points(
    db: Database,
    study_id: int,
    count: int,
    client_id: str | None,
    snapshot: Snapshot | None = None,
) -> Ask:
    """``count`` new trials from the algorithm for ``client_id`` (fewer when the budget or
    the space runs out), through this process's batch of the study. ``snapshot``: read
    by the caller (:func:`read_snapshot`) for ``count`` points; the batch's first fit
    uses it when the batch is this caller's alone, else reads its own."""
    ask = Ask(count, client_id, snapshot)
    work = filling(lambda batch: fit_batch(db, study_id, batch))

    def queued() -> None:
        ask.forget_snapshot()
        suggest_spare.mark_busy(db, study_id)

    return _batcher(db).submit(study_id, ask, work, on_queue=queued)


# ---- one batch: snapshot, fit, claim --------------------------------------------------------


def fit_batch(db: Database, study_id: int, batch: Sequence[Ask]) -> None:
    """Fill every ask of ``batch`` from one fit (retried on a stale snapshot)."""
    want = sum(a.count for a in batch)
    early = batch[0].snapshot if len(batch) == 1 else None
    for attempt in range(LOCK_FREE_ATTEMPTS + 1):
        inside = attempt == LOCK_FREE_ATTEMPTS
        start = time.perf_counter()
        if inside:
            snapshot = None
        elif attempt == 0 and early is not None:
            snapshot = early
        else:
            completions_idle(db, study_id)
            snapshot = _snapshot(db, study_id, want)
        held = None
        if snapshot is not None:
            held = suggest_spare.reserve_busy_batch(db, study_id, snapshot)
            snapshot = held.snapshot if held is not None else snapshot
        read = time.perf_counter()
        suggestion = fit(snapshot) if snapshot is not None else None
        fitted = time.perf_counter()
        completions_idle(db, study_id)
        reservation = held.reservation if held is not None else None
        try:
            spec, finished = _claim(
                db, study_id, batch, snapshot, suggestion, inside=inside, reservation=reservation
            )
        except _Stale:
            _observe_stale(db, time.perf_counter() - start)
            continue
        _observe(db, read - start, fitted - read, time.perf_counter() - fitted)
        suggest_spare.refill_if_low(db, study_id, spec, finished)
        return
    raise Temporary(f"study {study_id} changed during every attempt to suggest; try again")


def _observe(db: Database, snapshot: float, fit: float, claim: float) -> None:
    """Report the phases of a batch that claimed (``tuneforge_suggest_phase_seconds``; a
    snapshot read on the caller's way in counts as 0 here, a fit inside the claim as
    claim time)."""
    observer = db.phase_observer
    if observer is not None:
        observer("snapshot", snapshot)
        observer("fit", fit)
        observer("claim", claim)


def _observe_stale(db: Database, seconds: float) -> None:
    """Report an attempt whose claim found its snapshot stale, with the seconds it cost
    (phase ``stale`` of ``tuneforge_suggest_phase_seconds``: its count is the fits
    thrown away, a sign of claims competing for one study)."""
    if db.phase_observer is not None:
        db.phase_observer("stale", seconds)


def room_for(study: StudyRow, spec: StudySpec, want: int) -> int:
    """How many new trials the study may start now (budget and parallelism)."""
    if study.state != StudyState.ACTIVE.value or study.search_exhausted:
        return 0
    counts = counts_of(study)
    room = want
    if spec.max_active_trials is not None:
        running = sum(counts[s.value] for s in RUNNING_STATES)
        room = min(room, spec.max_active_trials - running)
    left = budget_left(spec, counts)
    if left is not None:
        room = min(room, left)
    return max(0, room)


def _snapshot(db: Database, study_id: int, want: int) -> Snapshot | None:
    """What the algorithm sees, read without a lock (and on PostgreSQL without a
    transaction); ``None`` when the study has no room for new trials (the claim then
    hands out nothing)."""
    with db.read(transaction=False) as session:
        study = get_study_row(session, study_id)
        return read_snapshot(session, study, spec_of(study), want)


def read_snapshot(session: Session, study: StudyRow, spec: StudySpec, want: int) -> Snapshot | None:
    """The snapshot of ``study`` (read in ``session``) for ``want`` points; ``None`` when
    the study has no room for new trials."""
    count = room_for(study, spec, want)
    if count == 0:
        return None
    request = _request(session, study, spec, count)
    return Snapshot(
        spec, study.trial_counter or 0, study.algorithm_state, study.search_exhausted, request
    )


def _request(session: Session, study: StudyRow, spec: StudySpec, count: int) -> SuggestRequest:
    """The algorithm's input: finished and in-flight trials (under ``bohb``/``asha`` the
    rule's view), warm-start trials first."""
    view = model_view(session, study, spec)
    reads = view is not None or get_algorithm(spec.algorithm).reads_history(spec.space)
    if view is not None:
        completed, in_flight = view
    elif reads:
        completed = history_of(session).finished(session, study.id, study.history_version)
        in_flight = tuple(load_trials(session, study.id, IN_FLIGHT_STATES))
    else:  # the algorithm would not look at them (nor at warm-start trials): no statement
        return request_without_history(study, spec, count)
    prior = prior_trials(session, study, spec) if reads else ()
    if prior:  # else the cache's tuple itself: no copy of a long history per call
        completed = (*prior, *completed)
    return replace(
        request_without_history(study, spec, count), completed=completed, in_flight=in_flight
    )


def request_without_history(study: StudyRow, spec: StudySpec, count: int) -> SuggestRequest:
    """The algorithm's input without any trial: all that an algorithm that reads no
    history (:func:`fits_in_claim`) is given."""
    return SuggestRequest(
        space=spec.space,
        metrics=spec.metrics,
        completed=(),
        in_flight=(),
        count=count,
        seed=spec.seed,
        state=study.algorithm_state,
    )


def fit(snapshot: Snapshot) -> Suggestion:
    """The algorithm's suggestion: from the fit process for the GP algorithms
    (:mod:`.fit_pool`), in this thread otherwise."""
    spec = snapshot.spec
    far = fit_pool.fit_in_child(
        spec.algorithm, spec.algorithm_options, spec.space, snapshot.request
    )
    if far is not None:
        return far
    algorithm = create_algorithm(spec.algorithm, spec.algorithm_options, spec.space)
    return algorithm.suggest(snapshot.request)


def _claim(
    db: Database,
    study_id: int,
    batch: Sequence[Ask],
    snapshot: Snapshot | None,
    suggestion: Suggestion | None,
    *,
    inside: bool,
    reservation: Reservation | None = None,
) -> tuple[StudySpec, int]:
    """Write the batch's trials if the snapshot still holds (else :class:`_Stale`); the
    study's spec and its number of results (:func:`.suggest_spare.finished_of`).

    ``inside`` (the last attempt): the algorithm runs here, on the locked study.
    Without a snapshot otherwise, the study had no room: nothing is handed out.
    ``reservation``: the fit drew from this reserved range
    (:func:`.suggest_spare.reserve_busy_batch`), whose state the study already saved.
    """
    with db.write() as session:
        study = get_study_row(session, study_id, lock=True)
        spec = spec_of(study)
        now = utcnow()
        if inside:
            fill_in_transaction(session, study, spec, now, batch)
        else:
            if (
                snapshot is not None
                and suggestion is not None
                and _moved(study, snapshot, suggestion, reservation)
            ):
                raise _Stale
            _write(session, study, spec, now, batch, suggestion, reserved=reservation is not None)
        refresh_study_state(session, study, spec, now)
        state = StudyState(study.state)
        finished = suggest_spare.finished_of(study)
    for a in batch:
        a.study_state = state
    return spec, finished


def fits_in_claim(spec: StudySpec) -> bool:
    """Whether the study's algorithm reads no history on its space (random or Sobol' over
    continuous floats) and no rule reshapes what it sees: it then costs microseconds and
    runs inside the transaction that writes its trials, with no snapshot before it."""
    rule = study_rule(spec)
    if rule.promotes or rule.feeds_algorithm:
        return False
    return not get_algorithm(spec.algorithm).reads_history(spec.space)


def fill_in_transaction(
    session: Session, study: StudyRow, spec: StudySpec, now: datetime, batch: Sequence[Ask]
) -> None:
    """Run the algorithm on the locked ``study`` and hand ``batch`` its new trials."""
    snapshot = read_snapshot(session, study, spec, sum(a.count for a in batch))
    suggestion = fit(snapshot) if snapshot is not None else None
    _write(session, study, spec, now, batch, suggestion)


def _write(
    session: Session,
    study: StudyRow,
    spec: StudySpec,
    now: datetime,
    batch: Sequence[Ask],
    suggestion: Suggestion | None,
    *,
    reserved: bool = False,
) -> None:
    """Save the algorithm's state (unless the fit drew from a reservation: the study saved
    the state past it then) and hand the suggestion's trials out to ``batch``."""
    decisions = [] if suggestion is None else absorb(study, spec, suggestion, reserved=reserved)
    hand_out(session, study, spec, now, batch, decisions)


def absorb(
    study: StudyRow, spec: StudySpec, suggestion: Suggestion, *, reserved: bool = False
) -> list[SuggestDecision]:
    """The suggestion's decisions, checked; the study keeps the algorithm's new state
    (unless the fit drew from a reservation) and whether the search is exhausted."""
    if not reserved:
        study.algorithm_state = dict(suggestion.state) if suggestion.state is not None else None
    if suggestion.exhausted:
        study.search_exhausted = True
    return checked(spec, suggestion)


def _moved(
    study: StudyRow,
    snapshot: Snapshot,
    suggestion: Suggestion,
    reservation: Reservation | None = None,
) -> bool:
    """Whether the claim must not use this fit (see the module docstring). A fit from a
    reservation stays valid whatever other claims did, if it drew inside its range."""
    if reservation is not None:
        moved = not reservation.covers(suggestion.state)
    else:
        counter = (study.trial_counter or 0) != snapshot.trial_counter
        moved = counter or study.algorithm_state != snapshot.algorithm_state
    if moved:
        return True
    if bool(study.search_exhausted) != bool(snapshot.exhausted):
        return True
    wanted = len(suggestion.decisions)
    return room_for(study, spec_of(study), wanted) < wanted


def checked(spec: StudySpec, suggestion: Suggestion) -> list[SuggestDecision]:
    """New parameter sets are checked against the space before they become trials."""
    return [
        NewParams(spec.space.validate_params(d.params, "suggestion"))
        if isinstance(d, NewParams)
        else d
        for d in suggestion.decisions
    ]


def hand_out(
    session: Session,
    study: StudyRow,
    spec: StudySpec,
    now: datetime,
    batch: Sequence[Ask],
    decisions: list[SuggestDecision],
) -> None:
    """Apply the decisions in order, each ask taking its ``count`` of them."""
    pending = iter(decisions)
    rows: list[tuple[Ask, Any, bool]] = []
    for ask in batch:
        scope = Scope(session, study, spec, now, ask.client_id)
        for _ in range(ask.count):
            decision = next(pending, None)
            if decision is None:
                break
            try:
                row = apply_decision(scope, decision)
            except Conflict as exc:  # a paused trial to resume was taken meanwhile
                raise _Stale from exc
            rows.append((ask, row, isinstance(decision, ResumeTrial)))
    resumed = [row for _, row, old in rows if old]  # new trials have no measurements
    ms: dict[int, list[MeasurementRow]] = {}
    if resumed:  # else the new rows are written with the transaction's other changes
        session.flush()
        ms = measurements_of(session, [row.id for row in resumed])
    for ask, row, _ in rows:
        ask.trials.append(to_trial(row, ms.get(row.id, ())))
