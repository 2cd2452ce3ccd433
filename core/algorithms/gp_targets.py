"""The trials as arrays for :mod:`.gp`, and the targets its models learn.

:class:`History` keeps one row per usable trial (completed or pruned with every
objective, or infeasible); in-flight trials only mark points as used.
Objectives become minimization targets with :func:`compress_outliers` against
terrible values (or, when many trials are in flight, :func:`power_warp`) and,
when there are several, an augmented Chebyshev scalarization
(:class:`ObjectiveColumns`); :func:`select_training` caps the
training set; :func:`constraint_targets` prepares the models of feasibility.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ..trials import Metric, MetricRole, TrialState
from .base import SuggestRequest
from .gp_model import SpaceEncoder

#: Objective values beyond median + this many MAD scales are log-compressed.
OUTLIER_FENCE = 3.0


@dataclass(frozen=True)
class History:
    """The trials as arrays: one row per usable trial (completed with every objective, or
    infeasible); objectives as minimization ``Y`` and constraint slacks ``G`` (``<= 0`` is
    satisfied), ``nan`` where missing."""

    objectives: tuple[Metric, ...]
    constraints: tuple[Metric, ...]
    U: np.ndarray
    F: np.ndarray
    A: np.ndarray
    Y: np.ndarray
    G: np.ndarray
    valid: np.ndarray
    infeasible: np.ndarray
    feasible: np.ndarray
    taken_F: np.ndarray
    pending_F: np.ndarray

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())

    @property
    def n_used(self) -> int:
        return len(self.valid)

    @classmethod
    def collect(cls, request: SuggestRequest, encoder: SpaceEncoder) -> History:
        objectives = tuple(m for m in request.metrics if m.role == MetricRole.OBJECTIVE)
        constraints = tuple(
            m
            for m in request.metrics
            if m.role == MetricRole.CONSTRAINT and m.threshold is not None
        )
        trials = (*request.completed, *request.in_flight)
        U_all, F_all, A_all, readable = encoder.from_params_many([t.params for t in trials])
        taken, pending, rows = [], [], []
        ys: list[list[float]] = []
        gs: list[list[float]] = []
        for i, trial in enumerate(trials):
            if not readable[i]:
                continue  # a parameter set this space cannot read says nothing about it
            taken.append(i)
            if trial.state.is_in_flight:
                pending.append(i)
            elif trial.state == TrialState.INFEASIBLE:
                rows.append(i)
                ys.append([np.nan] * len(objectives))
                gs.append([np.nan] * len(constraints))
            elif trial.state in _WITH_VALUES and trial.values is not None:
                y = [_minimized(m, trial.values.get(m.name)) for m in objectives]
                if objectives and np.all(np.isfinite(y)):
                    rows.append(i)
                    ys.append(y)
                    gs.append([_slack(m, trial.values.get(m.name)) for m in constraints])
        U, F, A = U_all[rows], F_all[rows], A_all[rows]
        Y = np.array(ys, dtype=float).reshape(len(rows), len(objectives))
        G = np.array(gs, dtype=float).reshape(len(rows), len(constraints))
        valid = np.isfinite(Y).all(axis=1) if len(objectives) else np.zeros(len(rows), bool)
        feasible = valid & (G <= 0).all(axis=1)
        return cls(
            objectives,
            constraints,
            U,
            F,
            A,
            Y,
            G,
            valid,
            ~valid,
            feasible,
            F_all[taken],
            F_all[pending],
        )


#: A pruned trial's values are its last report (the running CV mean, or the value at the
#: step it was stopped): a noisier, usually pessimistic, observation the model learns from.
_WITH_VALUES = (TrialState.COMPLETED, TrialState.PRUNED)


def _minimized(metric: Metric, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return np.nan
    return float(value) if metric.goal == "minimize" else -float(value)


def _slack(metric: Metric, value: Any) -> float:
    """``value - threshold`` turned so that ``<= 0`` is satisfied (``nan`` if missing)."""
    assert metric.threshold is not None
    v = _minimized(metric, value)
    t = metric.threshold if metric.goal == "minimize" else -metric.threshold
    return v - t


def compress_outliers(y: np.ndarray) -> np.ndarray:
    """Squash values (minimization) far above the bulk so one terrible trial cannot flatten
    the model: with ``m`` the median and ``s`` the MAD scale, values above the fence
    ``m + 3 s`` become ``fence + s log(1 + log(1 + (y - fence) / s))`` -- monotone,
    smooth, the identity below the fence, and at most about ``fence + 6.5 s`` for any
    float. The better half is never touched (measured on Branin with a region of
    1e6 losses, Hartmann-6 and a quadratic: it beats both no warping and a half-rank
    Gaussian warping, which distorts flat bad regions)."""
    if len(y) < 3:
        return y
    med = float(np.median(y))
    scale = 1.4826 * float(np.median(np.abs(y - med))) or float(y.std())
    if not scale > 0:
        return y
    fence = med + OUTLIER_FENCE * scale
    out = y.copy()
    high = y > fence
    out[high] = fence + scale * np.log1p(np.log1p((y[high] - fence) / scale))
    return out


def power_warp(y: np.ndarray) -> np.ndarray:
    """The Yeo-Johnson transform of the standardized values, its power by maximum likelihood
    (``scipy.stats.yeojohnson``): monotone, it reshapes the values towards a normal
    distribution, so a long tail of poor values is pulled in and the good ones spread
    out. Falls back to :func:`compress_outliers` when the values are constant or the
    transform is not finite."""
    if len(y) < 3 or not float(y.std()) > 0:
        return compress_outliers(y)
    z = (y - y.mean()) / y.std()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            out = np.asarray(stats.yeojohnson(z)[0], dtype=float)
        except (ValueError, FloatingPointError, ArithmeticError):
            return compress_outliers(y)
    if not np.all(np.isfinite(out)) or not float(out.std()) > 0:
        return compress_outliers(y)
    return out


@dataclass(frozen=True)
class ObjectiveColumns:
    """The objectives of the valid rows, each transformed once (:func:`compress_outliers`,
    or :func:`power_warp` if ``warp``); :meth:`targets` scalarizes them for one weight
    vector. A batch asks for one weight vector per point, and the transforms (a power
    fitted by maximum likelihood) do not depend on the weights: they run once per call."""

    n: int
    ok: np.ndarray
    cols: np.ndarray | None

    @classmethod
    def of(cls, Y: np.ndarray, warp: bool = False) -> ObjectiveColumns:
        ok = np.isfinite(Y).all(axis=1)
        if not ok.any():
            return cls(len(Y), ok, None)
        transform = power_warp if warp else compress_outliers
        return cls(len(Y), ok, np.column_stack([transform(Y[ok, i]) for i in range(Y.shape[1])]))

    @property
    def single(self) -> bool:
        """One objective: the targets do not depend on the weights."""
        return self.cols is None or self.cols.shape[1] == 1

    def targets(self, weights: np.ndarray) -> np.ndarray:
        """Scalar minimization targets of the valid rows (``nan`` elsewhere), not yet
        standardized: the one objective itself, or for several, each scaled to ``[0, 1]``
        and combined by the augmented Chebyshev scalarization
        ``max_i w_i f_i + 0.05 sum_i w_i f_i``."""
        out = np.full(self.n, np.nan)
        cols = self.cols
        if cols is None:
            return out
        if cols.shape[1] == 1:
            out[self.ok] = cols[:, 0]
            return out
        span = cols.max(axis=0) - cols.min(axis=0)
        norm = (cols - cols.min(axis=0)) / np.where(span > 0, span, 1.0)
        weighted = norm * weights
        out[self.ok] = weighted.max(axis=1) + 0.05 * weighted.sum(axis=1)
        return out


def select_training(
    history: History, y: np.ndarray, cap: int, rng: np.random.Generator
) -> np.ndarray:
    """Rows that train the models: all of them up to ``cap``; beyond, the best ``cap // 3``
    valid rows (feasible ones first, then by ``y``) plus a seeded uniform sample of the rest."""
    n = history.n_used
    if n <= cap:
        return np.arange(n)
    order = np.lexsort((np.where(history.valid, y, np.inf), ~history.feasible))
    best = order[: min(cap // 3, history.n_valid)]
    rest = np.setdiff1d(np.arange(n), best)
    extra = rng.choice(rest, cap - len(best), replace=False)
    return np.sort(np.concatenate([best, extra]))


def constraint_targets(
    history: History, chosen: np.ndarray
) -> Iterator[tuple[str, np.ndarray, np.ndarray, float]]:
    """``(state key, rows, standardized g, threshold)`` for every model of feasibility.

    An outcome constraint's slack is squashed by ``sign(g) log(1 + |g| / median |g|)``
    (monotone, keeps 0, tames outliers) and standardized. Infeasible trials get a
    model of their own: labels +1 (infeasible) and -1 (completed), threshold 0.
    """
    for i, metric in enumerate(history.constraints):
        rows = chosen[np.isfinite(history.G[chosen, i])]
        if len(rows) == 0:
            continue
        g = history.G[rows, i]
        scale = float(np.median(np.abs(g))) or 1.0
        g = np.sign(g) * np.log1p(np.abs(g) / scale)
        mean, sd = float(g.mean()), float(g.std()) or 1.0
        yield f"constraint:{metric.name}", rows, (g - mean) / sd, -mean / sd
    if history.infeasible[chosen].any():
        labels = np.where(history.infeasible[chosen], 1.0, -1.0)
        yield "feasibility", chosen, labels, 0.0
