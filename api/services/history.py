"""A per-process cache of each study's finished trials, for the algorithms.

Finished trials never change, and each one records the study version at which
it finished (``finished_seq``, assigned under the study lock); the study row's
``history_version`` is the newest of them. So the cache sends no statement when
it holds that version already, and otherwise asks the database only for trials
finished after the newest one it holds:
the answer is always what the database says, whichever replica wrote it, and
a suggest on a long study reads a handful of rows instead of all of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ...core.algorithms.grown import grown
from ...core.trials import Trial, TrialState
from ..db.repository import finished_since

#: Finished states whose trials carry a result the algorithms learn from.
WITH_RESULT = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.INFEASIBLE)


@dataclass(frozen=True)
class _Entry:
    seq: int
    trials: tuple[Trial, ...]


class HistoryCache:
    """Finished-with-result trials per study, refreshed incrementally from the database."""

    def __init__(self, max_studies: int = 256) -> None:
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_studies

    def finished(
        self, session: Session, study_id: int, version: int | None = None
    ) -> tuple[Trial, ...]:
        """Every completed, pruned or infeasible trial of the study, ordered by number.

        ``version`` is the study row's ``history_version`` read in the caller's
        transaction: when the cache holds that version already, no statement is sent.
        """
        with self._lock:
            entry = self._entries.get(study_id, _Entry(-1, ()))
        if version is not None and entry.seq >= version:
            return entry.trials
        seq, new = finished_since(session, study_id, entry.seq, WITH_RESULT)
        if seq == entry.seq:
            return entry.trials
        entry = _merge(entry, seq, new)
        with self._lock:
            current = self._entries.get(study_id)
            if current is None or current.seq < entry.seq:
                self._entries[study_id] = entry
                self._entries.move_to_end(study_id)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return entry.trials

    def forget(self, study_id: int) -> None:
        with self._lock:
            self._entries.pop(study_id, None)


def _merge(entry: _Entry, seq: int, new: list[Trial]) -> _Entry:
    """The entry with the newly finished trials ``new`` in number order (:func:`.grown`)."""
    return _Entry(seq, grown(entry.trials, new))
