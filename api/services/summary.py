"""The study row's summary: trial counts per state and the best trial(s), kept incrementally.

:mod:`.lifecycle` calls :func:`count_move` whenever it writes a trial's state and
:func:`record_best` when a trial completes, in the same transaction and under the
study's row lock, so the summary is always what a scan of the trials would say
(``tests/api/test_summary.py`` checks it against the scan). Reads of a study, a
page of studies and every planning step of suggest/complete use these columns
instead of counting or scanning trials, so their database work does not grow
with the study.

The best trials are exact incrementally: a completed trial never changes, and the
best trial (or Pareto front) of ``S + {x}`` is the best of ``best(S) + {x}``
(every dominated trial is dominated by one on the front; ties go to the lower
number, as in :func:`tuneforge.core.analysis.best_trials`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from ...core.analysis import best_trials
from ...core.trials import Trial, TrialState
from ..db.models import StudyRow, TrialRow
from ..db.repository import load_trials, spec_of

#: The summary column of each state.
COUNT_COLUMNS = {s: f"n_{s.value}" for s in TrialState}


def count_move(study: StudyRow, old: TrialState | None, new: TrialState) -> None:
    """A trial moved from ``old`` (``None``: it is new) to ``new``."""
    if old is not None:
        column = COUNT_COLUMNS[old]
        setattr(study, column, int(getattr(study, column) or 0) - 1)
    column = COUNT_COLUMNS[new]
    setattr(study, column, int(getattr(study, column) or 0) + 1)


def record_best(session: Session | None, study: StudyRow, row: TrialRow) -> None:
    """``row`` just completed (its values set): fold it into the study's best trials.

    A study migrated from before the summary existed (``best_trials`` unset) has them
    computed from its trials, in ``session``; without a session they stay unset (the
    next completion in one computes them)."""
    spec = spec_of(study)
    if not spec.objectives:
        study.best_trials = []
        return
    if study.best_trials is None:  # migrated study: computed once from its trials
        if session is None:
            return
        session.flush()
        current = load_trials(session, study.id, (TrialState.COMPLETED,))
    else:
        current = [_as_trial(entry) for entry in study.best_trials if entry["number"] != row.number]
        current.append(_as_trial({"number": row.number, "values": row.values}))
    study.best_trials = _entries(best_trials(current, spec.metrics))


def best_numbers(session: Session, study: StudyRow) -> list[int]:
    """The numbers of the study's best trials (a scan only for a study migrated before
    its summary existed and not completed since)."""
    if study.best_trials is not None:
        return [int(e["number"]) for e in study.best_trials]
    spec = spec_of(study)
    if not spec.objectives:
        return []
    completed = load_trials(session, study.id, (TrialState.COMPLETED,))
    return [t.number for t in best_trials(completed, spec.metrics)]


def _as_trial(entry: dict[str, Any]) -> Trial:
    values = entry.get("values")
    return Trial(
        number=int(entry["number"]),
        state=TrialState.COMPLETED,
        params={},
        values=dict(values) if values is not None else None,
    )


def _entries(trials: Sequence[Trial]) -> list[dict[str, Any]]:
    return [
        {"number": t.number, "values": dict(t.values) if t.values is not None else None}
        for t in trials
    ]
