"""Parameter importance: a functional ANOVA of a random forest fitted to the trials.

How it works (Hutter et al. 2014, "An efficient approach for assessing
hyperparameter importance"; Hooker 2007 for the decomposition):

1. A scikit-learn :class:`~sklearn.ensemble.RandomForestRegressor` (seeded, 64
   trees) learns the objective from the completed trials. Each parameter is one
   coordinate of the space's unit cube (log scales and integer cells as the
   algorithms see them); a categorical parameter with at most
   :data:`MAX_ONE_HOT` values is one-hot encoded, and an inactive conditional
   parameter is ``-1`` (one-hot: all zeros).
2. The forest's prediction ``f`` is decomposed under the uniform measure of the
   space, estimated on a seeded uniform sample ``B`` of configurations:
   ``V = Var f``; the main effect of parameter ``i`` is ``f_i(v) = E_B[f | x_i = v]``
   on a grid of ``v`` (every value of a parameter with few values), and its
   importance ``Var_v f_i(v) / V``. A pair's interaction is the variance of the
   doubly centred two-way table ``E_B[f | x_i = v, x_j = w]``, over ``V``.
   Every grid value uses the same sample ``B``, so the sampling noise is shared
   and largely cancels in the differences.
3. Pairs are formed among the :data:`MAX_PAIR_PARAMS` parameters with the
   largest total effect (Jansen's estimator), so a pure interaction, whose
   parameters have no main effect at all, is still found.

A conditional parameter's effects are measured where it is active and weighted
by the share of the space where it is. Importances are fractions of the
variance: main effects and pairwise interactions add up to at most about 1, the
rest being higher-order interactions. Same trials + same seed = same result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from scipy.stats import qmc

from ..errors import Conflict, InvalidSpec
from ..space import Parameter, ParamType, SearchSpace, _same_value
from ..trials import Metric, Trial, TrialState

#: Fewest completed trials with a value of the objective that importance needs.
MIN_TRIALS = 5
#: Categorical parameters with more values than this are encoded by index, not one-hot.
MAX_ONE_HOT = 32
#: Parameters (by total effect) among which pairwise interactions are computed.
MAX_PAIR_PARAMS = 10
N_TREES = 64
#: Features tried per split: all of them, as in fANOVA and Optuna (pairs are found best so).
MAX_FEATURES = 1.0
#: Sample of the space the main effects (and the total variance) are averaged over.
N_BACKGROUND = 512
#: Grid points of a continuous parameter for main effects, and per axis for pairs.
MAIN_GRID = 16
PAIR_GRID = 8
#: Rows of the sample each cell of a pair's table is averaged over.
N_PAIR_BACKGROUND = 64


@dataclass(frozen=True)
class ParamImportance:
    """The share of the objective's variance one parameter explains alone."""

    name: str
    importance: float


@dataclass(frozen=True)
class Interaction:
    """The share of the variance two parameters explain together, beyond their main effects."""

    params: tuple[str, str]
    importance: float


@dataclass(frozen=True)
class ImportanceResult:
    """Importances of every parameter and of the strongest pairs, largest first."""

    objective: str
    n_trials: int
    params: tuple[ParamImportance, ...]
    interactions: tuple[Interaction, ...]


def pick_metric(metrics: Sequence[Metric], name: str | None) -> Metric:
    """The metric ``name`` of the study (its first objective when ``None``); 422 otherwise."""
    if name is None:
        return next(m for m in metrics if m.role.value == "objective")
    for metric in metrics:
        if metric.name == name:
            return metric
    known = [m.name for m in metrics]
    raise InvalidSpec(f"unknown metric {name!r} (study metrics: {known})", field="objective")


def study_importance(
    space: SearchSpace, trials: Sequence[Trial], metric: Metric, *, seed: int = 0
) -> ImportanceResult:
    """Importance of ``space``'s parameters for ``metric`` over the completed ``trials``.

    Raises :class:`Conflict` when fewer than :data:`MIN_TRIALS` trials completed
    with a finite value of the metric.
    """
    rows = [
        (t.params, float(t.values[metric.name]))
        for t in trials
        if t.state == TrialState.COMPLETED
        and t.values is not None
        and metric.name in t.values
        and math.isfinite(t.values[metric.name])
    ]
    if len(rows) < MIN_TRIALS:
        raise Conflict(
            f"importance needs at least {MIN_TRIALS} completed trials with a value of "
            f"{metric.name!r}; the study has {len(rows)}",
            details={"n_trials": len(rows), "min_trials": MIN_TRIALS},
        )
    return parameter_importance(
        space, [p for p, _ in rows], [y for _, y in rows], objective=metric.name, seed=seed
    )


def parameter_importance(
    space: SearchSpace,
    params: Sequence[Mapping[str, Any]],
    values: Sequence[float],
    *,
    objective: str = "objective",
    seed: int = 0,
) -> ImportanceResult:
    """The functional ANOVA of a forest fitted to ``values`` at ``params`` (module docstring)."""
    from sklearn.ensemble import RandomForestRegressor

    encoder = _Encoder(space)
    y = np.asarray(values, dtype=float)
    units = np.vstack([space.encode(p) for p in params])
    forest = RandomForestRegressor(
        n_estimators=N_TREES,
        max_depth=64,
        max_features=MAX_FEATURES,
        random_state=seed % 2**32,
        n_jobs=1,
    )
    forest.fit(encoder.features(units, from_trials=True), y)
    anova = _Anova(space, encoder, forest.predict, np.random.default_rng([seed, 7919]))
    mains = {p.name: anova.main_effect(i) for i, p in enumerate(space.parameters)}
    pairs = [
        Interaction((space.parameters[i].name, space.parameters[j].name), anova.pair_effect(i, j))
        for i, j in combinations(sorted(anova.top_total(MAX_PAIR_PARAMS)), 2)
    ]
    return ImportanceResult(
        objective=objective,
        n_trials=len(y),
        params=tuple(
            sorted((ParamImportance(n, v) for n, v in mains.items()), key=lambda p: -p.importance)
        ),
        interactions=tuple(sorted(pairs, key=lambda p: -p.importance)),
    )


class _Encoder:
    """Unit-cube rows (every coordinate set) -> forest features, inactive parameters marked."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.params = space.parameters
        self.index = {p.name: i for i, p in enumerate(self.params)}

    def features(self, units: np.ndarray, *, from_trials: bool = False) -> np.ndarray:
        """Feature matrix of ``units``; rows from trials carry ``nan`` where inactive."""
        active = ~np.isnan(units) if from_trials else self.active(units)
        columns: list[np.ndarray] = []
        for i, p in enumerate(self.params):
            u = np.where(active[:, i], units[:, i], np.nan)
            if _one_hot(p):
                k = len(p.values)
                cells = np.clip(np.floor(np.nan_to_num(u, nan=0.0) * k), 0, k - 1).astype(int)
                block = np.zeros((len(u), k))
                block[np.arange(len(u)), cells] = 1.0
                block[~active[:, i]] = 0.0
                columns.append(block)
            else:
                columns.append(np.where(active[:, i], u, -1.0)[:, None])
        return np.hstack(columns)

    def active(self, units: np.ndarray) -> np.ndarray:
        """Which parameters are active in each row (conditions checked on decoded values)."""
        mask = np.ones(units.shape, dtype=bool)
        if not self.space.is_conditional:
            return mask
        for p in self.space._topological():
            cond = p.condition
            if cond is None:
                continue
            j = self.index[cond.parent]
            parent = self.params[j]
            hits = _condition_hits(parent, cond.values, units[:, j])
            mask[:, self.index[p.name]] = mask[:, j] & hits
        return mask


def _one_hot(p: Parameter) -> bool:
    return p.type == ParamType.CATEGORICAL and len(p.values) <= MAX_ONE_HOT


def _condition_hits(parent: Parameter, allowed: Sequence[Any], column: np.ndarray) -> np.ndarray:
    """Rows where ``parent``'s decoded value (from its unit coordinate) is one of ``allowed``."""
    uniques, inverse = np.unique(column, return_inverse=True)
    ok = np.array([any(_same_value(parent.decode(u), a) for a in allowed) for u in uniques])
    return ok[inverse.reshape(-1)]


def _grid(p: Parameter, points: int) -> np.ndarray:
    """Unit-cube values covering ``p`` evenly: each admissible value when it has few."""
    n = p.n_choices
    if n is not None and n <= points:
        if p.type in (ParamType.DISCRETE, ParamType.CATEGORICAL):
            return (np.arange(n) + 0.5) / n
        return np.unique([p.encode(p.decode((k + 0.5) / n)) for k in range(n)])
    return (np.arange(points) + 0.5) / points


class _Anova:
    """Main effects, pair effects and total effects of a fitted predictor."""

    def __init__(
        self, space: SearchSpace, encoder: _Encoder, predict: Any, rng: np.random.Generator
    ) -> None:
        self.space = space
        self.encoder = encoder
        self.predict = predict
        d = len(space.parameters)
        sobol = qmc.Sobol(2 * d, scramble=True, seed=rng)
        both = sobol.random(N_BACKGROUND)
        self.background, self.other = both[:, :d], both[:, d:]
        self.active = encoder.active(self.background)
        base = self._f(self.background)
        self.variance = float(np.var(base))
        self.base = base

    def _f(self, units: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict(self.encoder.features(units)), dtype=float)

    def _share(self, variance: float) -> float:
        if self.variance <= 1e-12 * max(1.0, float(np.mean(self.base**2))):
            return 0.0
        return float(min(1.0, max(0.0, variance / self.variance)))

    def main_effect(self, i: int) -> float:
        rows = self.background[self.active[:, i]]
        if len(rows) == 0:
            return 0.0
        grid = _grid(self.space.parameters[i], MAIN_GRID)
        batch = np.repeat(rows[None, :, :], len(grid), axis=0)
        batch[:, :, i] = grid[:, None]
        means = self._f(batch.reshape(-1, rows.shape[1])).reshape(len(grid), -1).mean(axis=1)
        return self._share(float(np.var(means)) * len(rows) / len(self.background))

    def pair_effect(self, i: int, j: int) -> float:
        both = self.active[:, i] & self.active[:, j]
        rows = self.background[both][:N_PAIR_BACKGROUND]
        if len(rows) == 0:
            return 0.0
        gi = _grid(self.space.parameters[i], PAIR_GRID)
        gj = _grid(self.space.parameters[j], PAIR_GRID)
        batch = np.repeat(rows[None, None, :, :], len(gi), axis=0)
        batch = np.repeat(batch, len(gj), axis=1)
        batch[:, :, :, i] = gi[:, None, None]
        batch[:, :, :, j] = gj[None, :, None]
        table = self._f(batch.reshape(-1, rows.shape[1])).reshape(len(gi), len(gj), -1).mean(axis=2)
        centred = table - table.mean(axis=0) - table.mean(axis=1)[:, None] + table.mean()
        share = float(np.mean(centred**2)) * float(np.mean(both))
        return self._share(share)

    def top_total(self, k: int) -> list[int]:
        """The ``k`` parameters with the largest total effect (Jansen's estimator)."""
        d = self.background.shape[1]
        if d <= k:
            return list(range(d))
        totals = []
        for i in range(d):
            mixed = self.background.copy()
            mixed[:, i] = self.other[:, i]
            totals.append(float(np.mean((self.base - self._f(mixed)) ** 2)) / 2)
        return sorted(range(d), key=lambda i: (-totals[i], i))[:k]
