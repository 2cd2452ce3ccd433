"""The early-stopping rule's say in suggest: which paused trials it promotes now (ASHA and
kin), and what the algorithm learns from under a rule that pauses trials (ASHA, Hyperband:
paused trials count as pruned results) or feeds it (BOHB: one budget's results)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from ...core.algorithms.gp import default_startup
from ...core.algorithms.tpe import TPEOptions
from ...core.decisions import ResumeTrial
from ...core.stopping import StoppingRule, create_rule
from ...core.study import StudySpec
from ...core.trials import BUDGET_STATES, Trial, TrialState
from ..db.engine import is_write_session
from ..db.models import StudyRow, TrialRow
from ..db.repository import measurements_of, state_counts, to_trial

RUNNING = (TrialState.ACTIVE, TrialState.STOPPING)


def study_rule(spec: StudySpec) -> StoppingRule:
    """The study's early-stopping rule, with its fidelity."""
    return create_rule(spec.early_stopping, spec.fidelity)


class RuleView:
    """Per process, each study's trials with their measurements, as the rules see them.

    Every change of a trial's state, values or measurements gives it the study's next
    version as ``touched_seq`` (:func:`.lifecycle.mark_touched`). A read sends no
    statement when the cache holds the study row's ``version``, and otherwise loads only
    the trials touched since (with their measurements), so a suggest or a rung decision
    on a long study reads what changed, not the study. Only read-only transactions store
    what they read (a write transaction may still roll back).
    """

    def __init__(self, max_studies: int = 64) -> None:
        self._entries: OrderedDict[tuple[int, Any], tuple[int, dict[int, Trial]]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_studies

    def trials(self, session: Session, study: StudyRow) -> list[Trial]:
        """All trials of ``study`` (failed ones included), ordered by number."""
        key = (study.id, study.created_at)
        with self._lock:
            seq, known = self._entries.get(key, (-1, {}))
        version = int(study.version or 0)
        if seq >= version:
            return list(known.values())
        session.flush()
        rows = session.scalars(
            select(TrialRow).where(TrialRow.study_id == study.id, TrialRow.touched_seq > seq)
        ).all()
        merged = dict(known)
        if rows:
            ms = measurements_of(session, [r.id for r in rows])
            grew = all(r.number not in known for r in rows)
            last = max(known) if known else -1
            merged.update((r.number, to_trial(r, ms.get(r.id, ()))) for r in rows)
            if not (grew and min(r.number for r in rows) > last):
                merged = dict(sorted(merged.items()))
        if not is_write_session(session):
            with self._lock:
                current = self._entries.get(key)
                if current is None or current[0] < version:
                    self._entries[key] = (version, merged)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self._max:
                        self._entries.popitem(last=False)
        return list(merged.values())


#: Keyed by the connection pool, which a database's read and write engines share.
_views: WeakKeyDictionary[Pool, RuleView] = WeakKeyDictionary()
_views_lock = threading.Lock()


def rule_trials(session: Session, study_id: int, exclude_number: int | None = None) -> list[Trial]:
    """The study's trials with their measurements, as a promoting rule sees them
    (failed ones and ``exclude_number`` left out), through this process's :class:`RuleView`."""
    pool = session.get_bind().engine.pool
    with _views_lock:
        view = _views.setdefault(pool, RuleView())
    study = session.get(StudyRow, study_id)
    if study is None:
        return []
    return [
        t
        for t in view.trials(session, study)
        if t.state != TrialState.FAILED and t.number != exclude_number
    ]


def promotable(session: Session, study: StudyRow, spec: StudySpec) -> list[ResumeTrial]:
    """The paused trials the rule would hand back now, in its order (none for most rules)."""
    rule = study_rule(spec)
    if not rule.promotes:
        return []
    session.flush()
    counts = state_counts(session, study.id)
    if counts[TrialState.PAUSED.value] == 0:
        return []
    busy = any(counts[s.value] for s in (TrialState.REQUESTED, *RUNNING))
    used = sum(counts[s.value] for s in BUDGET_STATES)
    spent = spec.max_trials is not None and used >= spec.max_trials
    final = not busy and (spent or bool(study.search_exhausted))
    trials = rule_trials(session, study.id)
    return list(rule.promotions(trials, rule.watched(spec.objectives), final=final))


def model_view(
    session: Session, study: StudyRow, spec: StudySpec
) -> tuple[tuple[Trial, ...], tuple[Trial, ...]] | None:
    """For a rule that pauses trials or feeds the algorithm: the trials the algorithm learns
    from and those whose points it should avoid (in flight); ``None`` for every other rule
    (the study's finished and in-flight trials as they are)."""
    rule = study_rule(spec)
    if not (rule.feeds_algorithm or rule.promotes):
        return None
    trials = rule_trials(session, study.id)
    metric = rule.watched(spec.objectives)
    return rule.algorithm_view(trials, metric, len(spec.space), model_startup(spec))


def model_startup(spec: StudySpec) -> int:
    """How many finished trials the study's algorithm needs before it fits a model (its
    Sobol start-up): TPE's ``n_startup_trials``, GP's ``n_startup`` (default 2d, 5..10),
    ``auto``'s delegate's; 0 for algorithms without a model."""
    options = spec.algorithm_options
    tpe_default = int(TPEOptions.model_fields["n_startup_trials"].default)
    if spec.algorithm == "tpe":
        return int(options.get("n_startup_trials", tpe_default))
    if spec.algorithm == "gp":
        return int(options.get("n_startup") or default_startup(spec.space))
    if spec.algorithm == "auto":
        if spec.space.is_conditional:  # auto uses TPE there (one objective: BOHB's case)
            return tpe_default
        return default_startup(spec.space)
    return 0
