"""The same-error stop of a managed study: whether its first finished trials all failed,
or were infeasible, with one error (its data or objective is broken, not the
configurations), and how the API words that ``completion_reason``. Reads only;
:func:`.lifecycle.refresh_study_state` completes the study when it holds."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.study import StudySpec
from ...core.trials import TrialState
from ..db.models import StudyRow, TrialRow

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
    if not may_have_failed_alike(spec, counts):
        return False
    k = same_error_count(spec)
    rows = _first_failures(session, study.id, k)
    last = max((r.completed_at for r in rows if r.completed_at is not None), default=None)
    if len(rows) != k or last != study.updated_at:
        return False
    reasons = [r.reason or "" for r in rows]
    if reasons[0].startswith("lease expired"):  # the text lifecycle.reap_expired writes
        return False
    return len({_NUMBERS.sub("#", r).strip() for r in reasons}) == 1


def may_have_failed_alike(spec: StudySpec, counts: dict[str, int]) -> bool:
    """What the counts say of :func:`first_trials_failed_alike`: false, or possibly true
    (exactly the first few finished, all failed or infeasible, in a managed study)."""
    finished = sum(counts[s] for s in _FAILED)
    done = counts[TrialState.COMPLETED.value] + counts[TrialState.PRUNED.value]
    return spec.objective is not None and not done and finished == same_error_count(spec)


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
