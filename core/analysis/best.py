"""The best trials of a study: the single best one, or the Pareto front.

Only ``completed`` trials whose reported values meet every outcome constraint
count; pruned, infeasible, failed and unfinished trials never do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..trials import Goal, Metric, MetricRole, Trial, TrialState

#: Rows compared at once in :func:`pareto_front`; bounds memory to ``_CHUNK * n * d``.
_CHUNK = 256


def pareto_front(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Indices (ascending) of the non-dominated rows of ``points``.

    ``points`` has one row per candidate and one column per objective;
    ``maximize[k]`` tells whether column ``k`` is maximized. A row is dominated
    when another row is at least as good in every column and strictly better in
    one; identical rows do not dominate each other, so duplicates on the front
    are all kept. Values must be finite. Runs in ``O(n^2 d)`` time, vectorized
    in row chunks.
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != len(maximize):
        raise ValueError(f"points must have shape (n, {len(maximize)}), got {pts.shape}")
    signs = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    costs = pts * signs  # every column minimized
    dominated = np.zeros(len(costs), dtype=bool)
    for start in range(0, len(costs), _CHUNK):
        rows = costs[start : start + _CHUNK, None, :]
        no_worse = np.all(costs[None, :, :] <= rows, axis=2)
        better = np.any(costs[None, :, :] < rows, axis=2)
        dominated[start : start + _CHUNK] = np.any(no_worse & better, axis=1)
    return np.flatnonzero(~dominated)


def dominates(a: Sequence[float], b: Sequence[float], maximize: Sequence[bool]) -> bool:
    """Whether objective vector ``a`` Pareto-dominates ``b``."""
    pairs = [(x, y) if up else (-x, -y) for x, y, up in zip(a, b, maximize, strict=True)]
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def is_better(a_values: Mapping[str, float], b_values: Mapping[str, float], metric: Metric) -> bool:
    """Whether results ``a_values`` are strictly better than ``b_values`` on ``metric``."""
    return metric.better(a_values[metric.name], b_values[metric.name])


def is_feasible(trial: Trial, metrics: Sequence[Metric]) -> bool:
    """Whether ``trial`` counts for "best": completed, objectives finite, constraints met."""
    if trial.state != TrialState.COMPLETED or trial.values is None:
        return False
    values = trial.values
    for metric in metrics:
        if metric.role == MetricRole.TRACKED:
            continue
        value = values.get(metric.name)
        if value is None or not math.isfinite(value):
            return False
        if metric.role == MetricRole.CONSTRAINT and not metric.satisfied(value):
            return False
    return True


def best_trials(trials: Sequence[Trial], metrics: Sequence[Metric]) -> list[Trial]:
    """The best trial (single objective) or the Pareto front (several), sorted by number.

    With one objective the result holds at most one trial, the lowest number
    winning ties. Raises :class:`ValueError` if ``metrics`` has no objective.
    """
    objectives = [m for m in metrics if m.role == MetricRole.OBJECTIVE]
    if not objectives:
        raise ValueError("best_trials needs at least one objective metric")
    candidates = sorted((t for t in trials if is_feasible(t, metrics)), key=lambda t: t.number)
    if not candidates:
        return []
    if len(objectives) == 1:
        return [_single_best(candidates, objectives[0])]
    points = np.array([[_value(t, m) for m in objectives] for t in candidates])
    front = pareto_front(points, [m.goal == Goal.MAXIMIZE for m in objectives])
    return [candidates[i] for i in front]


def _single_best(candidates: Sequence[Trial], metric: Metric) -> Trial:
    """The first of ``candidates`` (sorted by number) with the best value of ``metric``."""
    best = candidates[0]
    for trial in candidates[1:]:
        if metric.better(_value(trial, metric), _value(best, metric)):
            best = trial
    return best


def _value(trial: Trial, metric: Metric) -> float:
    """A feasible trial's value of ``metric``."""
    assert trial.values is not None
    return trial.values[metric.name]
