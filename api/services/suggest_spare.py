"""Spare points: a busy TPE study's suggestions, fitted ahead of the suggests that take them.

Without them, a model suggest under load waits for a batch of its study
(:mod:`.suggest_fit`): a snapshot, the fit in the fit process and a claim, about 35 ms
on two busy cores, and a suggest that arrives during a batch waits for the next one
(docs/performance.md, run R). Once a study is *busy* in this process (a suggest queued
behind another suggest's fit), this module keeps a few of its points fitted ahead:

1. **Refill**, on a background thread, when the spare points run low: a snapshot as a
   batch takes it, with the spare points not yet handed out added to the in-flight
   trials (TPE's constant liar spreads the new points away from them); then the fit's
   randomness is *reserved* (:meth:`.Algorithm.reserve`: TPE's draws from ``draws``
   on, the saved state moved past them) by one ``UPDATE`` that swaps the saved state
   the snapshot read for the reserved one (PostgreSQL), or when that state moved
   meanwhile (and on SQLite) by a short write transaction on the locked study row; the
   fit runs from that reservation. No other fit, of this process
   or another server process, draws the same random numbers, so a refill never has to
   be thrown away because another fit saved the state during it.
2. **Take**: a suggest of the study takes spare points inside its bookkeeping transaction
   (api/services/suggest.py), where queued trials are handed out too: one short write
   transaction, as a ``random`` suggest has, and no wait for a fit.

A spare point is the suggestion the study would have got from a slightly older
history. The bound: a point is handed out only while the study has at most 1% more
finished trials than its fit saw (at 10,000 trials, at most 100 newer results are not
in the model that chose it; older points are dropped). So a study needs
:data:`SPARE_FROM` finished trials before it keeps any, then at most 1% of its history,
and never more than ``TUNEFORGE_SPARE_POINTS`` (32 by default; 0 turns spares off).
Spaces where two draws can be equal (no always-active continuous float) keep none
either (:func:`keeps_spares`). A study whose suggests never queue, one client in a
loop, never has spare points: its suggestions are exactly the batch path's, so the
same history and seed give the same points. Only TPE keeps spare points
(:data:`SPARE_ALGORITHMS`), on studies whose early-stopping rule neither pauses trials
nor feeds the algorithm: its fit costs the same at any size (its window), its draws are
counted in its state (so they can be reserved), and the points of one fit are spread by
the constant liar; the GP algorithms' batches already share one posterior
(:mod:`.suggest_fit`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from psycopg.types.json import Jsonb
from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from ...core.algorithms import Suggestion, create_algorithm
from ...core.algorithms.base import Algorithm, Params, Reservation, SuggestRequest
from ...core.algorithms.sampling import collisions_possible
from ...core.decisions import NewParams, SuggestDecision
from ...core.study import StudySpec
from ...core.trials import Trial, TrialState
from ..db import driver
from ..db.engine import Database
from ..db.models import StudyRow
from ..db.repository import counts_of, get_study_row, spec_of
from .history import WITH_RESULT
from .promotions import study_rule

if TYPE_CHECKING:
    from .suggest_fit import Snapshot

log = logging.getLogger("tuneforge.api.suggest_spare")

#: Algorithms that keep spare points (see the module docstring).
SPARE_ALGORITHMS = frozenset({"tpe"})
#: Finished trials a study needs before it keeps spare points: its bound is 1% of them.
SPARE_FROM = 100
#: Spare points a study keeps at most (``TUNEFORGE_SPARE_POINTS``; 0: none).
_limit = 32

#: The fit of a snapshot (:func:`.suggest_fit.fit` by default).
Fit = Callable[["Snapshot"], Suggestion]


def configure(limit: int) -> None:
    """Keep at most ``limit`` spare points per study (0: none)."""
    global _limit
    _limit = max(0, int(limit))


def spare_limit() -> int:
    """The configured most spare points per study."""
    return _limit


def keeps_spares(spec: StudySpec) -> bool:
    """Whether the study's algorithm, rule and space allow spare points (module
    docstring). The space needs an always-active continuous float: a refill does not
    see the trials other fits hand out during it, so on a space where two draws can
    be equal it could repeat one of them."""
    if _limit <= 0 or spec.algorithm not in SPARE_ALGORITHMS:
        return False
    if collisions_possible(spec.space):
        return False
    rule = study_rule(spec)
    return not (rule.promotes or rule.feeds_algorithm)


def finished_of(study: StudyRow) -> int:
    """The study's trials with a result (what TPE learns from), from its summary columns."""
    counts = counts_of(study)
    return sum(counts[s.value] for s in WITH_RESULT)


def target_of(finished: int) -> int:
    """How many spare points a study with ``finished`` results keeps: 1% of them, at most
    the configured limit, none below :data:`SPARE_FROM`."""
    if finished < SPARE_FROM:
        return 0
    return min(_limit, finished // 100)


def fresh(seen: int, finished: int) -> bool:
    """Whether a point fitted on ``seen`` results may be handed out at ``finished``."""
    return finished - seen <= finished // 100


@dataclass
class _Spares:
    """One study's spare points in this process: each with the results its fit saw."""

    algorithm: str
    options: Any
    points: deque[tuple[Params, int]] = field(default_factory=deque)
    refilling: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    refilled: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.refilled = threading.Condition(self.lock)


_registry: WeakKeyDictionary[Database, dict[int, _Spares]] = WeakKeyDictionary()
#: Per database, the studies whose suggests queued behind a fit in this process.
_busy: WeakKeyDictionary[Database, set[int]] = WeakKeyDictionary()
_registry_lock = threading.Lock()


def _spares(db: Database, study_id: int, spec: StudySpec | None = None) -> _Spares | None:
    """The study's entry; created for ``spec`` when given, dropped when ``spec``'s algorithm
    or options changed since the entry was made."""
    with _registry_lock:
        studies = _registry.setdefault(db, {})
        entry = studies.get(study_id)
        if spec is None:
            return entry
        if entry is None or (entry.algorithm, entry.options) != (
            spec.algorithm,
            spec.algorithm_options,
        ):
            entry = studies[study_id] = _Spares(spec.algorithm, spec.algorithm_options)
        return entry


def available(db: Database, study_id: int, wait: float = 0.0) -> bool:
    """Whether this process holds spare points of the study (read without a statement; the
    bookkeeping transaction checks them against the locked study). When it holds none and
    a refill runs, wait up to ``wait`` seconds for it: it is closer to done than a batch
    started now, which would fit what the refill is fitting."""
    entry = _spares(db, study_id)
    if entry is None:
        return False
    with entry.lock:
        if not entry.points and entry.refilling and wait > 0:
            entry.refilled.wait_for(lambda: entry.points or not entry.refilling, wait)
        return bool(entry.points)


def mark_busy(db: Database, study_id: int) -> None:
    """A suggest of the study queued behind another one's fit: from now on the study keeps
    spare points in this process (when :func:`keeps_spares`)."""
    if _limit > 0:
        with _registry_lock:
            _busy.setdefault(db, set()).add(study_id)


def _is_busy(db: Database, study_id: int) -> bool:
    with _registry_lock:
        return study_id in _busy.get(db, ())


def take(db: Database, study: StudyRow, spec: StudySpec, need: int) -> list[SuggestDecision]:
    """Up to ``need`` spare points of the locked ``study`` (each handed out once: the caller
    turns them into trials in its transaction); points too old for the study's current
    history are dropped."""
    if need <= 0 or not keeps_spares(spec):
        return []
    entry = _spares(db, study.id, spec)
    if entry is None:
        return []
    finished = finished_of(study)
    taken: list[SuggestDecision] = []
    old = 0
    with entry.lock:
        while entry.points and len(taken) < need:
            params, seen = entry.points.popleft()
            if fresh(seen, finished):
                taken.append(NewParams(params))
            else:
                old += 1
    _note(db, "taken", len(taken))
    _note(db, "old", old)
    return taken


def _note(db: Database, event: str, points: int) -> None:
    """Tell the metrics (``tuneforge_spare_points_total``) about ``points`` of ``event``."""
    if points and db.spare_observer is not None:
        db.spare_observer(event, points)


def refill_if_low(db: Database, study_id: int, spec: StudySpec, finished: int) -> bool:
    """Start a refill of the study's spare points on a background thread when the study is
    busy, it has ``finished`` results, at most half its target of spare points and no
    refill running; whether one started."""
    target = target_of(finished)
    if target == 0 or not keeps_spares(spec) or not _is_busy(db, study_id):
        return False
    entry = _spares(db, study_id, spec)
    if entry is None:
        return False
    with entry.lock:
        if entry.refilling or len(entry.points) * 2 > target:
            return False
        entry.refilling = True
    thread = threading.Thread(
        target=_refill, args=(db, study_id, entry), name="tuneforge-spares", daemon=True
    )
    thread.start()
    return True


def _refill(db: Database, study_id: int, entry: _Spares) -> None:
    try:
        refill(db, study_id, entry)
    except Exception:  # a refill is an optimization: the batch path still serves
        log.warning("refilling the spare points of study %s failed", study_id, exc_info=True)
    finally:
        with entry.lock:
            entry.refilling = False
            entry.refilled.notify_all()


def refill(db: Database, study_id: int, entry: _Spares, fit: Fit | None = None) -> int:
    """Fit the study's missing spare points and keep them (see the module docstring);
    how many were added. ``fit``: :func:`.suggest_fit.fit` unless given (a test's
    wrapper)."""
    from .suggest_fit import checked, read_snapshot  # suggest_fit imports this module
    from .suggest_fit import fit as default_fit

    with db.read(transaction=False) as session:
        study = get_study_row(session, study_id)
        spec = spec_of(study)
        finished = finished_of(study)
        with entry.lock:
            pending = [p for p, seen in entry.points if fresh(seen, finished)]
        want = target_of(finished) - len(pending)
        if not keeps_spares(spec) or want <= 0:
            return 0
        snapshot = read_snapshot(session, study, spec, want)
    if snapshot is None or snapshot.exhausted:
        return 0
    liars = tuple(_in_flight(params, i) for i, params in enumerate(pending))
    request = replace(snapshot.request, in_flight=(*snapshot.request.in_flight, *liars))
    held = reserve_fit(db, study_id, replace(snapshot, request=request))
    if held is None:
        return 0
    suggestion = (fit or default_fit)(held.snapshot)
    if suggestion.exhausted:
        return 0
    if not held.reservation.covers(suggestion.state):
        log.warning("a refill of study %s drew outside its reservation", study_id)
        return 0
    points = checked(spec, suggestion)
    with entry.lock:
        entry.points.extend((dict(d.params), finished) for d in points if isinstance(d, NewParams))
    _note(db, "fitted", len(points))
    return len(points)


@dataclass(frozen=True)
class ReservedFit:
    """A snapshot whose fit draws from a reserved range (:func:`reserve_fit`)."""

    snapshot: Snapshot
    reservation: Reservation


def reserve_fit(db: Database, study_id: int, snapshot: Snapshot) -> ReservedFit | None:
    """Reserve the randomness of a fit of ``snapshot`` (:func:`_reserve_by_swap`, else a
    short write transaction on the locked study, :func:`_reserve`) and move the snapshot
    to the reservation's start; ``None``, with no statement, when the algorithm cannot
    reserve for this request (TPE's start-up)."""
    spec = snapshot.spec
    algorithm = create_algorithm(spec.algorithm, spec.algorithm_options, spec.space)
    proposed = algorithm.reserve(snapshot.request)
    if proposed is None:
        return None
    reservation = _reserve_by_swap(db, study_id, snapshot.request.state, proposed)
    if reservation is None:  # SQLite, or the saved state moved since the snapshot
        with db.write() as session:
            reservation = _reserve(session, study_id, algorithm, snapshot.request)
    if reservation is None:
        return None
    request = replace(snapshot.request, state=reservation.start)
    moved = replace(snapshot, algorithm_state=reservation.start, request=request)
    return ReservedFit(moved, reservation)


def reserve_busy_batch(db: Database, study_id: int, snapshot: Snapshot) -> ReservedFit | None:
    """The reservation of a batch fit (:func:`.suggest_fit.fit_batch`) of a study that
    keeps spare points and is busy in this process; ``None`` otherwise.

    There the study's suggests take spare points in their bookkeeping transactions and
    refills reserve draws all the time, so the trial counter and the saved state move
    during any fit: a batch that checked them after its fit went stale on every
    lock-free attempt and fitted a fourth time inside the claim (about 400 ms, the
    slowest suggests of docs/performance.md run W). With its draws reserved, as a
    refill's are, it shares no random numbers with any other fit, so the claim accepts
    it whatever else moved (the room for its trials is still checked)."""
    if not keeps_spares(snapshot.spec) or not _is_busy(db, study_id):
        return None
    return reserve_fit(db, study_id, snapshot)


#: A reservation's swap of the study's saved algorithm state (PostgreSQL, see
#: :func:`_reserve_by_swap`): the new state, if the saved one is still the one seen.
_STATE_SWAPPED = (
    update(StudyRow)
    .where(
        StudyRow.id == bindparam("study_id"),
        StudyRow.algorithm_state.is_not_distinct_from(bindparam("seen")),
    )
    .values(algorithm_state=bindparam("saved"))
    .returning(StudyRow.id)
)


def _reserve_by_swap(
    db: Database, study_id: int, seen: Mapping[str, Any] | None, proposed: Reservation
) -> Reservation | None:
    """On PostgreSQL, ``proposed`` (reserved from the state ``seen``, as the snapshot read
    it) saved in one statement in autocommit mode, when the study's saved state is still
    ``seen``; ``None`` when it moved (or on SQLite): then :func:`_reserve` takes the lock.

    A busy study's refills reserve about ten times a second. Through :func:`_reserve`
    each held the study's row lock for three round trips and the Python between them,
    about 6 ms under load, where every suggest and completion of the study queue for
    that lock (docs/performance.md, run W); the swap holds it for one ``UPDATE``."""
    if db.backend != "postgresql":
        return None
    params = {
        "study_id": study_id,
        "seen": Jsonb(dict(seen)) if seen is not None else None,
        "saved": Jsonb(dict(proposed.saved)),
    }
    return proposed if driver.run(db, _STATE_SWAPPED, params) else None


def _reserve(
    session: Session, study_id: int, algorithm: Algorithm, request: SuggestRequest
) -> Reservation | None:
    """Set aside the randomness of a fit of ``request`` on the locked study: the state
    saved from now on moves past it (:meth:`.Algorithm.reserve`), so no other fit, of
    this process or another, draws what this one draws."""
    study = get_study_row(session, study_id, lock=True)
    reservation = algorithm.reserve(replace(request, state=study.algorithm_state))
    if reservation is not None:
        study.algorithm_state = dict(reservation.saved)
    return reservation


def _in_flight(params: Params, index: int) -> Trial:
    """A spare point as the algorithm's in-flight trial (a number no trial has)."""
    return Trial(number=-1 - index, state=TrialState.ACTIVE, params=params)
