"""Warm start: the completed trials of earlier studies, as prior history for the algorithm.

A study's ``warm_start`` names earlier studies of its project. At creation
:func:`resolve` turns names into ids (422 naming ``warm_start[i]`` for a study
that is unknown or in another project). On every suggest, :func:`prior_trials`
hands the algorithm those studies' completed trials whose parameters fit the
new space and that carry every objective and constraint of the new study;
the others are skipped and counted (:func:`summary`). Prior trials get negative
numbers (-1, -2, ...), count towards no budget and never appear in the study's
own trial list. They are read again only when a source study's version moves:
a suggest checks one small row per source study.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import InvalidSpec
from ...core.study import StudySpec
from ...core.trials import MetricRole, Trial, TrialState
from ..db.models import StudyRow, TrialRow


@dataclass(frozen=True)
class SourceCount:
    """What one source study contributed: trials used, and trials skipped and why."""

    study_id: int
    name: str
    used: int
    skipped_params: int
    skipped_values: int


@dataclass(frozen=True)
class Prior:
    trials: tuple[Trial, ...]
    sources: tuple[SourceCount, ...]


_CacheKey = tuple[str, int, datetime, tuple[tuple[int, int], ...]]
_CACHE_SIZE = 64
_cache: OrderedDict[_CacheKey, Prior] = OrderedDict()
_cache_lock = threading.Lock()


def resolve(session: Session, spec: StudySpec, project_id: int) -> StudySpec:
    """``spec`` with ``warm_start`` as study ids of ``project_id`` (duplicates dropped)."""
    if not spec.warm_start:
        return spec
    ids: list[int] = []
    for i, ref in enumerate(spec.warm_start):
        column = StudyRow.id if isinstance(ref, int) else StudyRow.name
        found = session.scalar(
            select(StudyRow.id).where(StudyRow.project_id == project_id, column == ref)
        )
        if found is None:
            what = f"id {ref}" if isinstance(ref, int) else f"named {ref!r}"
            raise InvalidSpec(f"no study {what} in this project", field=f"warm_start[{i}]")
        if found not in ids:
            ids.append(found)
    return replace(spec, warm_start=tuple(ids))


def prior_trials(session: Session, study: StudyRow, spec: StudySpec) -> tuple[Trial, ...]:
    """The completed trials of the study's warm-start sources that fit its space and metrics."""
    if not spec.warm_start:
        return ()
    return _prior(session, study, spec).trials


def summary(session: Session, study: StudyRow, spec: StudySpec) -> list[SourceCount]:
    """Per source study: how many of its completed trials the algorithm sees, and skips."""
    if not spec.warm_start:
        return []
    return list(_prior(session, study, spec).sources)


def _prior(session: Session, study: StudyRow, spec: StudySpec) -> Prior:
    ids = [int(ref) for ref in spec.warm_start]
    rows = session.execute(
        select(StudyRow.id, StudyRow.version, StudyRow.name).where(StudyRow.id.in_(ids))
    ).all()
    versions = {r.id: (r.version, r.name) for r in rows}
    url = str(session.get_bind().engine.url)
    key = (url, study.id, study.created_at, tuple((i, versions[i][0]) for i in sorted(versions)))
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    prior = _load(session, spec, [(i, versions[i][1]) for i in ids if i in versions])
    with _cache_lock:
        _cache[key] = prior
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return prior


def _load(session: Session, spec: StudySpec, sources: Sequence[tuple[int, str]]) -> Prior:
    needed = [m.name for m in spec.metrics if m.role != MetricRole.TRACKED]
    known = {m.name for m in spec.metrics}
    trials: list[Trial] = []
    counts: list[SourceCount] = []
    for source_id, name in sources:
        used = bad_params = bad_values = 0
        for params, values in session.execute(
            select(TrialRow.params, TrialRow.values)
            .where(TrialRow.study_id == source_id, TrialRow.state == TrialState.COMPLETED.value)
            .order_by(TrialRow.number)
        ):
            clean = _fit(spec, params)
            if clean is None:
                bad_params += 1
            elif not values or any(m not in values for m in needed):
                bad_values += 1
            else:
                used += 1
                kept = {k: float(v) for k, v in values.items() if k in known}
                trials.append(_prior_trial(-(len(trials) + 1), clean, kept, source_id))
        counts.append(SourceCount(source_id, name, used, bad_params, bad_values))
    return Prior(tuple(reversed(trials)), tuple(counts))


def _fit(spec: StudySpec, params: Any) -> dict[str, Any] | None:
    try:
        return spec.space.validate_params(params)
    except InvalidSpec:
        return None


def _prior_trial(
    number: int, params: Mapping[str, Any], values: Mapping[str, float], source: int
) -> Trial:
    return Trial(
        number=number,
        state=TrialState.COMPLETED,
        params=params,
        values=values,
        metadata={"warm_start_from": source},
    )
