"""A suggest's bookkeeping on PostgreSQL in two round trips, one of them under the study's
lock, when all it does is start new trials.

Under a team's load the bookkeeping transaction of :mod:`.suggest` (and the claim of
an algorithm that runs in it) is the study lock's most frequent holder
(docs/performance.md, runs W and X). Through the ORM it holds the lock for three round
trips: the study row, the new trials' ``INSERT`` and the study's ``UPDATE``. Here, as
for completions (:mod:`.completion_calls`), the statements go in a
:func:`.driver.pipeline`: the study row under its lock, unless a lease ran out or a
caller holds running trials, in one round trip; the study's ``UPDATE``, the
``INSERT`` statements and the ``COMMIT`` in another. The new points are this process's
spare points of the study (:mod:`.suggest_spare`) or, for an algorithm that reads no
history (:func:`.suggest_fit.fits_in_claim`), the algorithm's own, run on the locked
row as the usual path runs it; the trials are started by the lifecycle module
(:func:`.lifecycle.start_trial`) on rows in no session (:mod:`.detached`).

Everything else is the usual path's, rolled back before anything is written: SQLite,
a dispatched task's client, a lease that ran out or a caller that holds running trials
(the study row is then not even locked),
queued or promotable trials, a study that is not active or whose state has to be
reconsidered with reads (:func:`.lifecycle.refresh_is_idle`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, any_, bindparam, or_, select

from ...core.decisions import NewParams, SuggestDecision
from ...core.study import StudySpec
from ...core.trials import TASK_CLIENT_PREFIX, StudyState, Trial, TrialState
from ..db import driver
from ..db.engine import Database
from ..db.models import StudyRow, TrialRow
from ..db.repository import counts_of, for_update, spec_of, to_trial, utcnow
from . import suggest_spare
from .detached import Detached, NewTrials, observed_lock, read_columns
from .lifecycle import RUNNING_VALUES, refresh_is_idle, start_trial
from .promotions import study_rule
from .suggest_fit import (
    Ask,
    Snapshot,
    absorb,
    fit,
    fits_in_claim,
    request_without_history,
    room_for,
)


@dataclass(frozen=True)
class Served:
    """What a pipelined bookkeeping did: the study's spec and its results (for the refill
    of spare points, :func:`.suggest_spare.refill_if_low`)."""

    spec: StudySpec
    finished: int


class _Elsewhere(Exception):
    """This batch takes the usual path: roll back what was read."""


def bookkeeping_pipelined(db: Database, study_id: int, batch: Sequence[Ask]) -> Served | None:
    """Serve every ask of ``batch`` as :func:`.suggest._bookkeeping` would when all it
    does is start new trials: each ask gets its trials and how many points it is still
    owed; None when the batch takes the usual path, nothing written and no ask touched."""
    clients = [a.client_id for a in batch]
    if db.backend != "postgresql" or any(
        c is not None and c.startswith(TASK_CLIENT_PREFIX) for c in clients
    ):
        return None
    named = sorted({c for c in clients if c})
    sink = NewTrials()
    locked: list[float] = []
    try:
        with observed_lock(db, locked), driver.pipeline(db) as tx:
            keys = {"study_id": study_id, "clients": named, "now": utcnow()}
            asked = time.perf_counter()
            found = tx.queue(_STUDY_LOCKED_UNLESS_DUE, keys).rows()
            if not found:  # no such study, or a trial is due: not locked
                raise _Elsewhere
            locked[:] = [asked, time.perf_counter()]
            study = Detached.of(StudyRow, found[0])
            spec = spec_of(study.row)
            served = _serve(db, study.row, spec, batch, sink, utcnow())
            study.queue_changes(tx)
            sink.queue_inserts(tx)
    except _Elsewhere:
        return None
    for ask, (trials, remaining) in zip(batch, served, strict=True):
        ask.trials.extend(trials)
        ask.remaining = remaining
        ask.study_state = StudyState.ACTIVE
    return Served(spec, suggest_spare.finished_of(study.row))


def _serve(
    db: Database,
    study: StudyRow,
    spec: StudySpec,
    batch: Sequence[Ask],
    sink: NewTrials,
    now: datetime,
) -> list[tuple[list[Trial], int]]:
    """Each ask's new trials and the points it is still owed, or :class:`_Elsewhere`."""
    counts = counts_of(study)
    promoting = counts[TrialState.PAUSED.value] and study_rule(spec).promotes
    if study.state != StudyState.ACTIVE.value or counts[TrialState.REQUESTED.value] or promoting:
        raise _Elsewhere
    if not refresh_is_idle(study, spec):
        raise _Elsewhere
    fill = fits_in_claim(spec)
    served = []
    for ask in batch:
        room = room_for(study, spec, ask.count)
        decisions = _new_points(db, study, spec, room, fill)
        if not all(isinstance(d, NewParams) for d in decisions):
            raise _Elsewhere
        rows = [
            start_trial(sink, study, spec, dict(d.params), ask.client_id, now)
            for d in decisions
            if isinstance(d, NewParams)
        ]
        served.append(([to_trial(r) for r in rows], 0 if fill else room - len(rows)))
    if not refresh_is_idle(study, spec):
        raise _Elsewhere
    return served


def _new_points(
    db: Database, study: StudyRow, spec: StudySpec, room: int, fill: bool
) -> list[SuggestDecision]:
    """Up to ``room`` new points: the algorithm's, run here when it reads no history
    (``fill``), else this process's spare points of the study (possibly none)."""
    if room <= 0:
        return []
    if not fill:
        return suggest_spare.take(db, study, spec, room)
    request = request_without_history(study, spec, room)
    counter = study.trial_counter or 0
    snapshot = Snapshot(spec, counter, study.algorithm_state, study.search_exhausted, request)
    return absorb(study, spec, fit(snapshot))


def _study_locked_unless_due() -> Select[Any]:
    """The study row under its lock, unless a running trial of the study has a lease
    that ran out or belongs to one of the callers (as :func:`.suggest._dues` reads it):
    then no row, and no lock (``FOR NO KEY UPDATE`` locks the rows of ``FROM`` alone)."""
    running = or_(*(TrialRow.state == value for value in sorted(RUNNING_VALUES)))
    due = or_(
        TrialRow.lease_expires_at < bindparam("now"),
        TrialRow.client_id == any_(bindparam("clients")),
    )
    dues = select(TrialRow.id).where(TrialRow.study_id == StudyRow.id, running, due)
    study = select(*read_columns(StudyRow)).where(
        StudyRow.id == bindparam("study_id"), ~dues.exists()
    )
    return for_update(study).with_for_update(of=StudyRow, key_share=True)


_STUDY_LOCKED_UNLESS_DUE = _study_locked_unless_due()
