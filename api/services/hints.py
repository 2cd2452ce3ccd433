"""Per-process hints about studies that never change once created (their rule, their
algorithm), so a hot path can pick its way before reading the study.

A hint only picks which of two correct paths to try first; the path checks the study
itself and sets the hint again. Hints are kept per :class:`Database` object (a test's
app, or a server's one database), so a database emptied and refilled under another
``Database`` object never sees them.
"""

from __future__ import annotations

import threading
from weakref import WeakKeyDictionary

from ..db.engine import Database


class StudyHints:
    """A bounded ``(database, study id) -> bool`` map (cleared when full)."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._by_db: WeakKeyDictionary[Database, dict[int, bool]] = WeakKeyDictionary()

    def get(self, db: Database, study_id: int) -> bool | None:
        with self._lock:
            return self._by_db.get(db, {}).get(study_id)

    def note(self, db: Database, study_id: int, value: bool) -> bool:
        """Remember ``value`` for the study and return it."""
        with self._lock:
            hints = self._by_db.setdefault(db, {})
            if len(hints) >= self.limit:
                hints.clear()
            hints[study_id] = value
        return value
