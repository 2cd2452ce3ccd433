"""The early-stopping rule's say in suggest: which paused trials it promotes now (ASHA and
kin), and what the algorithm learns from under a rule that pauses trials (ASHA, Hyperband:
paused trials count as pruned results) or feeds it (BOHB: one budget's results)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...core.algorithms.gp import default_startup
from ...core.algorithms.tpe import TPEOptions
from ...core.decisions import ResumeTrial
from ...core.stopping import StoppingRule, create_rule
from ...core.study import StudySpec
from ...core.trials import BUDGET_STATES, Trial, TrialState
from ..db.models import MeasurementRow, StudyRow, TrialRow
from ..db.repository import load_trials, state_counts

RUNNING = (TrialState.ACTIVE, TrialState.STOPPING)
#: ``session.info`` key of the trials one suggest transaction loaded for the rule.
_LOADED = "tuneforge.rule_trials"


def study_rule(spec: StudySpec) -> StoppingRule:
    """The study's early-stopping rule, with its fidelity."""
    return create_rule(spec.early_stopping, spec.fidelity)


def rule_trials(session: Session, study_id: int, exclude_number: int | None = None) -> list[Trial]:
    """The study's trials with their measurements, as a promoting rule sees them
    (failed ones and ``exclude_number`` left out)."""
    return [
        t
        for t in load_trials(session, study_id, with_measurements=True)
        if t.state != TrialState.FAILED and t.number != exclude_number
    ]


def suggest_trials(session: Session, study_id: int) -> list[Trial]:
    """:func:`rule_trials`, loaded once per transaction: a later call in the same
    transaction re-reads only the trials' states (promotions and queued trials change
    them in between) and loads afresh when a trial or a measurement was added."""
    loaded: dict[int, tuple[int, list[Trial]]] = session.info.setdefault(_LOADED, {})
    rows = session.execute(
        select(TrialRow.number, TrialRow.state).where(TrialRow.study_id == study_id)
    ).all()
    states = {int(number): TrialState(state) for number, state in rows}
    n_measurements = session.scalar(
        select(func.count()).select_from(MeasurementRow).where(MeasurementRow.study_id == study_id)
    )
    count = int(n_measurements or 0)
    cached = loaded.get(study_id)
    live = {n for n, state in states.items() if state != TrialState.FAILED}
    if cached is None or cached[0] != count or live - {t.number for t in cached[1]}:
        trials = rule_trials(session, study_id)
        loaded[study_id] = (count, trials)
        return trials
    return [
        t if t.state == states[t.number] else dataclasses.replace(t, state=states[t.number])
        for t in cached[1]
        if t.number in live
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
    trials = suggest_trials(session, study.id)
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
    session.flush()
    trials = suggest_trials(session, study.id)
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
