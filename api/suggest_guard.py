"""Around each suggest call: the cost cap (``count`` x parameters) and its latency metric.

A call asking for more than the cap is served the cap (fewer trials than ``count``), not
refused: the cap depends on the study, which a client's schema cannot know.

The suggest route wraps the service call in :func:`suggest_guard`; the study's
algorithm and parameter count, read once per study and then cached, are all both
need, so the suggest service itself stays unaware of either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from weakref import WeakKeyDictionary

from sqlalchemy import select

from .db.engine import Database
from .db.models import StudyRow
from .metrics import current_metrics
from .services.suggest import check_count

#: Largest ``count`` x number of parameters one suggest call may ask for: the work of an
#: algorithm grows with both, and one call must not hold a server thread for seconds.
MAX_SUGGEST_CELLS = 10_000
#: Algorithms that fit a model for every point of a batch (``auto`` may delegate to ``gp``).
#: Measured on a loaded 2-core machine after 20 trials: ``gp`` spends about 0.1 s per point
#: on 10 parameters and 0.2 s on 256, ``cmaes`` about 0.8 s per point on 256 parameters.
MODEL_ALGORITHMS = frozenset({"auto", "gp", "cmaes"})
#: Their batches are capped tighter: at most this many trials per call ...
MAX_MODEL_COUNT = 16
#: ... and at most this many trials x parameters.
MAX_MODEL_CELLS = 2_000


def max_suggest_count(n_parameters: int, algorithm: str) -> int:
    """The most trials one suggest call may ask of a study of this size and algorithm."""
    cells, most = MAX_SUGGEST_CELLS, None
    if algorithm in MODEL_ALGORITHMS:
        cells, most = MAX_MODEL_CELLS, MAX_MODEL_COUNT
    largest = max(1, cells // max(1, n_parameters))
    return min(largest, most) if most is not None else largest


#: (algorithm, number of parameters) per study, per database: neither changes after a
#: study is created (PATCH cannot touch them) and study ids are never reused.
_shapes: WeakKeyDictionary[Database, dict[int, tuple[str, int]]] = WeakKeyDictionary()
_shapes_lock = threading.Lock()
_MAX_CACHED = 10_000


def _algorithm_and_size(db: Database, study_id: int) -> tuple[str, int] | None:
    with _shapes_lock:
        known = _shapes.setdefault(db, {}).get(study_id)
    if known is not None:
        return known
    with db.read() as session:
        spec = session.scalar(select(StudyRow.spec).where(StudyRow.id == study_id))
    if not isinstance(spec, dict):
        return None  # no such study: the service answers 404
    known = (str(spec.get("algorithm", "auto")), len(spec.get("parameters") or ()))
    with _shapes_lock:
        cache = _shapes.setdefault(db, {})
        if len(cache) >= _MAX_CACHED:
            cache.clear()
        cache[study_id] = known
    return known


@contextmanager
def suggest_guard(db: Database, study_id: int, count: int) -> Iterator[int]:
    """Yield how many trials the call may hand out: ``count``, lowered to the study's cost
    cap (:func:`max_suggest_count`; the reply then holds fewer trials, as "up to
    ``count``" allows), and time the block as ``tuneforge_suggest_seconds``."""
    check_count(count)  # 1 to 1000 whatever the study (422 naming ``count``)
    known = _algorithm_and_size(db, study_id)
    if known is None:
        yield count
        return
    algorithm, n_parameters = known
    allowed = min(count, max_suggest_count(n_parameters, algorithm))
    start = time.perf_counter()
    try:
        yield allowed
    finally:
        metrics = current_metrics.get()
        if metrics is not None:
            metrics.suggest_latency.labels(algorithm).observe(time.perf_counter() - start)
