"""Analysis use cases: parameter importance and hypervolume of a study's completed trials.

The trials are read in one short read transaction; the forest is fitted after
the session is closed, never inside a lock or transaction. Results are cached
per process by the study's version (which moves on every change of its
trials), so a dashboard polling an unchanged study costs one primary-key read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

from sqlalchemy import select

from ...core.analysis.hypervolume import HypervolumeResult, study_hypervolume
from ...core.analysis.importance import ImportanceResult, pick_metric, study_importance
from ...core.errors import InvalidSpec
from ...core.trials import Trial, TrialState
from ..db.engine import Database
from ..db.models import TrialRow
from ..db.repository import get_study_row, spec_of
from .warm_start import SourceCount, summary

_CacheKey = tuple[str, int, datetime, int, str]
_CACHE_SIZE = 128
_cache: OrderedDict[_CacheKey, ImportanceResult] = OrderedDict()
_cache_lock = threading.Lock()


def importance(db: Database, study_id: int, objective: str | None) -> ImportanceResult:
    """Importance of the study's parameters for ``objective`` (its first objective when None).

    422 naming ``objective`` for a metric the study does not have; 409 when too
    few trials completed (see :func:`tuneforge.core.analysis.study_importance`).
    """
    with db.read() as session:
        row = get_study_row(session, study_id)
        spec = spec_of(row)
        metric = pick_metric(spec.metrics, objective)
        key = (db.url, row.id, row.created_at, row.version, metric.name)
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None:
            return cached
        pairs = session.execute(
            select(TrialRow.number, TrialRow.params, TrialRow.values)
            .where(TrialRow.study_id == study_id, TrialRow.state == TrialState.COMPLETED.value)
            .order_by(TrialRow.number)
        ).all()
    trials = [
        Trial(number=n, state=TrialState.COMPLETED, params=dict(p), values=dict(v or {}))
        for n, p, v in pairs
    ]
    result = study_importance(spec.space, trials, metric, seed=spec.seed)  # no session open
    with _cache_lock:
        _cache[key] = result
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


_hv_cache: OrderedDict[tuple[str, int, datetime, int], HypervolumeResult] = OrderedDict()


def hypervolume(db: Database, study_id: int) -> HypervolumeResult:
    """The hypervolume after each completed trial, in the order they finished.

    422 naming ``metrics`` for a study with one objective. Cached per study version.
    """
    with db.read() as session:
        row = get_study_row(session, study_id)
        spec = spec_of(row)
        if len(spec.objectives) < 2:
            raise InvalidSpec(
                "the study has one objective; a hypervolume needs two or more", field="metrics"
            )
        key = (db.url, row.id, row.created_at, row.version)
        with _cache_lock:
            cached = _hv_cache.get(key)
        if cached is not None:
            return cached
        rows = session.execute(
            select(TrialRow.number, TrialRow.values)
            .where(TrialRow.study_id == study_id, TrialRow.state == TrialState.COMPLETED.value)
            .order_by(TrialRow.finished_seq, TrialRow.number)
        ).all()
    trials = [
        Trial(number=n, state=TrialState.COMPLETED, params={}, values=dict(v or {}))
        for n, v in rows
    ]
    result = study_hypervolume(trials, spec.metrics, spec.hypervolume_reference)
    with _cache_lock:
        _hv_cache[key] = result
        _hv_cache.move_to_end(key)
        while len(_hv_cache) > _CACHE_SIZE:
            _hv_cache.popitem(last=False)
    return result


def warm_start_summary(db: Database, study_id: int) -> list[SourceCount]:
    """Per warm-start source: the completed trials the algorithm sees, and those skipped."""
    with db.read() as session:
        row = get_study_row(session, study_id)
        return summary(session, row, spec_of(row))
