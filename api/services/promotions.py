"""The early-stopping rule's say in suggest: which paused trials it promotes now (ASHA and
kin), and what the algorithm learns from when the rule feeds it (BOHB)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ...core.decisions import ResumeTrial
from ...core.stopping import StoppingRule, create_rule
from ...core.study import StudySpec
from ...core.trials import BUDGET_STATES, Trial, TrialState
from ..db.models import StudyRow
from ..db.repository import load_trials, state_counts

RUNNING = (TrialState.ACTIVE, TrialState.STOPPING)


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
    """For a rule that feeds the algorithm (BOHB): the finished trials it should learn from
    and the trials whose points it should avoid; ``None`` for every other rule."""
    rule = study_rule(spec)
    if not rule.feeds_algorithm:
        return None
    session.flush()
    trials = rule_trials(session, study.id)
    got = rule.model_history(trials, rule.watched(spec.objectives), len(spec.space))
    if got is None:
        return None
    shown = got[1]
    numbers = {t.number for t in shown}
    return shown, tuple(t for t in trials if t.number not in numbers)
