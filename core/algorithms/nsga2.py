"""``nsga2``: steady-state NSGA-II (Deb et al. 2002) for one or several objectives.

**Constrained domination.** Every finished trial gets its objectives as losses
(smaller is better) and a *violation*: 0 when it completed with every objective
and satisfies every outcome constraint, the summed distance to the thresholds
when it breaks some, and infinite when it has no usable result (infeasible,
pruned, an objective missing). A feasible trial dominates every infeasible one;
of two trials with violations, the smaller violation dominates; two feasible
trials compare by Pareto dominance. :func:`nondominated_sort` peels the fronts
(:func:`.history.nondominated_ranks`).

**Environmental selection.** The population is the first ``population_size``
finished trials front by front; the front that does not fit entirely keeps its
members of largest crowding distance (:func:`crowding_distance`, boundary
points infinite). **Mating selection**: binary tournaments by the crowded
comparison (lower front, then larger crowding). **Variation**: SBX and
polynomial mutation fitted to each parameter (:mod:`.variation`).

Steady-state, as in :mod:`.evolution`: each call selects from the trials
finished so far, so parallel workers never wait for a generation; infeasible
trials also steer children away from their neighbourhoods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..space import SearchSpace
from ..trials import Goal, Metric, MetricRole, Trial, TrialState
from .base import SuggestRequest
from .evolution import EvolutionarySearch, Population
from .grown import Folded, by_number
from .history import encode_trials, nondominated_ranks, objectives_of
from .variation import VariationOptions


class NSGA2Options(VariationOptions):
    """Options of ``nsga2``."""


class NSGA2Search(EvolutionarySearch):
    """Steady-state NSGA-II; state ``{"draws": i, "sobol_index": j}``."""

    name = "nsga2"
    options_model = NSGA2Options

    def population(self, request: SuggestRequest) -> Population:
        space, metrics = request.space, request.metrics
        rows = _rows.of(request.completed, partial(_add_rows, space, metrics), (space, metrics))
        size = int(self.options["population_size"])
        chosen, fitness = select(rows.losses, rows.violation, size, rows.numbers)
        return Population(rows.x[chosen], fitness)


@dataclass(frozen=True)
class _Rows:
    """What selection reads of the finished trials the space can encode, in number order:
    their numbers, unit-cube rows, losses and violations."""

    numbers: np.ndarray
    x: np.ndarray
    losses: np.ndarray
    violation: np.ndarray


#: Each study's rows, kept between calls: a call inserts the trials finished since
#: (see :mod:`.grown`). Selection still reads every row, as fronts depend on all of them.
_rows: Folded[_Rows] = Folded()


def _add_rows(
    space: SearchSpace, metrics: Sequence[Metric], held: _Rows | None, trials: Sequence[Trial]
) -> _Rows:
    """``held`` with the rows of ``trials`` inserted where their numbers belong."""
    x, kept = encode_trials(space, trials)
    encoded = [trials[i] for i in kept]
    losses, violation = losses_and_violation(encoded, metrics)
    numbers = np.array([t.number for t in encoded], dtype=np.int64)
    order = np.argsort(numbers, kind="stable")
    new = (numbers[order], x[order], losses[order], violation[order])
    old = None if held is None else (held.numbers, held.x, held.losses, held.violation)
    return _Rows(*by_number(old, new))


def losses_and_violation(
    trials: Sequence[Trial], metrics: Sequence[Metric]
) -> tuple[np.ndarray, np.ndarray]:
    """Objective losses (``n x m``, ``inf`` when missing) and the violation of each trial."""
    objectives = objectives_of(metrics)
    constraints = [
        m for m in metrics if m.role == MetricRole.CONSTRAINT and m.threshold is not None
    ]
    losses = np.full((len(trials), len(objectives)), np.inf)
    violation = np.full(len(trials), np.inf)
    for i, trial in enumerate(trials):
        if trial.state != TrialState.COMPLETED or not trial.values:
            continue
        row = [_loss(m, trial.values.get(m.name)) for m in objectives]
        if not all(math.isfinite(v) for v in row):
            continue
        losses[i] = row
        violation[i] = sum(_excess(m, trial.values.get(m.name)) for m in constraints)
    return losses, violation


def _loss(metric: Metric, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return math.inf
    return float(value) if metric.goal == Goal.MINIMIZE else -float(value)


def _excess(metric: Metric, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return math.inf
    assert metric.threshold is not None
    return 0.0 if metric.satisfied(float(value)) else abs(float(value) - metric.threshold)


def nondominated_sort(
    losses: np.ndarray, violation: np.ndarray | None = None, limit: int | None = None
) -> np.ndarray:
    """Front index of each row under constrained domination (0 = the best front).

    ``limit``: stop once at least that many rows are placed; the rest get ``-1``.
    """
    n = len(losses)
    viol = np.zeros(n) if violation is None else np.asarray(violation, dtype=float)
    fronts = np.full(n, -1)
    target = n if limit is None else min(limit, n)
    feasible = np.flatnonzero(viol == 0)
    fronts[feasible] = nondominated_ranks(losses[feasible], target)
    placed = int((fronts >= 0).sum())
    front = int(fronts.max()) + 1
    # Infeasible rows: smaller violation dominates; equal violations share a front.
    others = np.flatnonzero(viol != 0)
    for level in np.unique(viol[others]):
        if placed >= target:
            break
        members = others[viol[others] == level]
        fronts[members] = front
        placed += len(members)
        front += 1
    return fronts


def crowding_distance(losses: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row of one front: per objective, the normalized
    gap between its two neighbours, summed; the extremes of any objective get ``inf``."""
    n, m = losses.shape
    out = np.zeros(n)
    if n <= 2:
        return np.full(n, math.inf)
    for k in range(m):
        vals = losses[:, k]
        order = np.argsort(vals, kind="stable")
        span = vals[order[-1]] - vals[order[0]]
        out[order[0]] = out[order[-1]] = math.inf
        if span > 0 and math.isfinite(span):
            out[order[1:-1]] += (vals[order[2:]] - vals[order[:-2]]) / span
    return out


def select(
    losses: np.ndarray, violation: np.ndarray, size: int, numbers: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """NSGA-II's environmental selection of ``size`` rows: their indices and a fitness per
    chosen row (its position in the crowded-comparison order; smaller is better)."""
    fronts = nondominated_sort(losses, violation, limit=size)
    crowd = np.zeros(len(losses))
    for f in np.unique(fronts[fronts >= 0]):
        members = np.flatnonzero(fronts == f)
        if violation[members[0]] == 0:
            crowd[members] = crowding_distance(losses[members])
    placed = [int(i) for i in np.flatnonzero(fronts >= 0)]
    order = sorted(placed, key=lambda i: (fronts[i], -crowd[i], numbers[i]))[:size]
    chosen = np.array(order, dtype=int)
    return chosen, np.arange(len(chosen), dtype=float)
