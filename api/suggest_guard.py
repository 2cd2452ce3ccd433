"""Around each suggest call: the cost cap (``count`` x parameters) and its latency metric.

The suggest route wraps the service call in :func:`suggest_guard`; one light read of
the study's spec gives its algorithm and parameter count, which is all both
need, so the suggest service itself stays unaware of either.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select

from ..core.errors import InvalidSpec
from .db.engine import Database
from .db.models import StudyRow
from .metrics import current_metrics

#: Largest ``count`` x number of parameters one suggest call may ask for: the work of an
#: algorithm grows with both, and one call must not hold a server thread for seconds.
MAX_SUGGEST_CELLS = 10_000


def check_suggest_cost(count: int, n_parameters: int) -> None:
    """422 naming ``count`` when ``count`` x ``n_parameters`` exceeds :data:`MAX_SUGGEST_CELLS`."""
    if n_parameters > 0 and count * n_parameters > MAX_SUGGEST_CELLS:
        largest = max(1, MAX_SUGGEST_CELLS // n_parameters)
        raise InvalidSpec(
            f"count x parameters must be at most {MAX_SUGGEST_CELLS}; this study has "
            f"{n_parameters} parameters, so ask for at most {largest} trials per call "
            f"(got {count})",
            field="count",
            details={"max_cells": MAX_SUGGEST_CELLS, "max_count": largest},
        )


def _algorithm_and_size(db: Database, study_id: int) -> tuple[str, int] | None:
    with db.read() as session:
        spec = session.scalar(select(StudyRow.spec).where(StudyRow.id == study_id))
    if not isinstance(spec, dict):
        return None  # no such study: the service answers 404
    return str(spec.get("algorithm", "auto")), len(spec.get("parameters") or ())


@contextmanager
def suggest_guard(db: Database, study_id: int, count: int) -> Iterator[None]:
    """Check the call's cost, then time the block as ``tuneforge_suggest_seconds``."""
    known = _algorithm_and_size(db, study_id)
    if known is None:
        yield
        return
    algorithm, n_parameters = known
    check_suggest_cost(count, n_parameters)
    start = time.perf_counter()
    try:
        yield
    finally:
        metrics = current_metrics.get()
        if metrics is not None:
            metrics.suggest_latency.labels(algorithm).observe(time.perf_counter() - start)
