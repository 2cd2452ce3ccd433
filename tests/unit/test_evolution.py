"""``genetic`` and ``nsga2`` past their start-up: breeding, elitism, constraints, and
NSGA-II's sorting and crowding against a brute-force reference (property test)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from tuneforge.core.algorithms import SuggestRequest, create_algorithm, validate_algorithm
from tuneforge.core.algorithms.history import nondominated_ranks
from tuneforge.core.algorithms.nsga2 import crowding_distance, nondominated_sort, select
from tuneforge.core.algorithms.variation import crossover, mutate
from tuneforge.core.space import SearchSpace
from tuneforge.core.trials import Metric, MetricRole, Trial, TrialState

from .test_algorithms_contract import MIXED

SMALL_POP = {"population_size": 6, "n_startup": 6}
TWO = (
    Metric("f1", goal="minimize"),  # type: ignore[arg-type]
    Metric("f2", goal="minimize"),  # type: ignore[arg-type]
)


def algo(name: str, space: SearchSpace, options: Mapping[str, Any] = SMALL_POP) -> Any:
    return create_algorithm(name, validate_algorithm(name, dict(options), space), space)


def completed(space: SearchSpace, n: int, metrics: Sequence[Metric], seed: int = 0) -> list[Trial]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = space.sample(rng)
        u = space.encode(p)
        u = np.where(np.isnan(u), 0.5, u)
        values = {m.name: float(np.sum((u - 0.3 * (k + 1)) ** 2)) for k, m in enumerate(metrics)}
        out.append(Trial(number=i, state=TrialState.COMPLETED, params=p, values=values))
    return out


@pytest.mark.parametrize("name", ["genetic", "nsga2"])
@pytest.mark.parametrize("metrics", [TWO[:1], TWO], ids=["one", "two"])
def test_children_are_valid_reproducible_and_distinct(
    name: str, metrics: tuple[Metric, ...]
) -> None:
    space = SearchSpace.from_list(MIXED)
    history = tuple(completed(space, 20, metrics))
    request = SuggestRequest(space, metrics, history, (), 8, 3, None)
    first = algo(name, space).suggest(request)
    again = algo(name, space).suggest(request)
    assert first.params == again.params
    assert len({space.key(p) for p in first.params}) == 8
    for p in first.params:
        assert space.validate_params(p) == p  # conditions respected, values admissible
    other = algo(name, space).suggest(SuggestRequest(space, metrics, history, (), 8, 4, None))
    assert other.params != first.params
    # A batch asked in two calls equals the batch asked at once.
    half = algo(name, space).suggest(SuggestRequest(space, metrics, history, (), 4, 3, None))
    rest = algo(name, space).suggest(SuggestRequest(space, metrics, history, (), 4, 3, half.state))
    assert half.params + rest.params == first.params


@pytest.mark.parametrize("name", ["genetic", "nsga2"])
def test_a_sphere_improves_far_beyond_random_search(name: str) -> None:
    space = SearchSpace.from_list(
        [{"name": f"x{i}", "type": "float", "low": -5.0, "high": 5.0} for i in range(4)]
    )
    metric = (Metric("loss", goal="minimize"),)  # type: ignore[arg-type]
    bests = {}
    for algorithm in (name, "random"):
        search = algo(algorithm, space, {} if algorithm == "random" else {"population_size": 10})
        history: list[Trial] = []
        state = None
        for i in range(150):
            s = search.suggest(SuggestRequest(space, metric, tuple(history), (), 1, 0, state))
            state = s.state
            p = s.params[0]
            value = sum(float(v) ** 2 for v in p.values())
            history.append(Trial(i, TrialState.COMPLETED, p, {"loss": value}))
        bests[algorithm] = min(t.values["loss"] for t in history if t.values)
    assert bests[name] < 0.25 * bests["random"]


def test_the_best_trial_is_always_a_parent() -> None:
    space = SearchSpace.from_list([{"name": "x", "type": "float", "low": 0.0, "high": 1.0}])
    metric = (Metric("loss", goal="minimize"),)  # type: ignore[arg-type]
    history = [
        Trial(i, TrialState.COMPLETED, {"x": i / 40}, {"loss": abs(i / 40 - 0.5)})
        for i in range(40)
    ]
    for name in ("genetic", "nsga2"):
        pop = algo(name, space).population(SuggestRequest(space, metric, tuple(history), (), 1, 0))
        assert len(pop.rows) == 6
        best = pop.rows[int(np.argmin(pop.fitness))]
        assert space.decode(best) == {"x": 0.5}


def test_nsga2_prefers_feasible_and_small_violations() -> None:
    losses = np.array([[0.0, 0.0], [5.0, 5.0], [1.0, 1.0], [0.5, 3.0]])
    violation = np.array([2.0, 0.0, 1.0, np.inf])
    chosen, _ = select(losses, violation, 3, [0, 1, 2, 3])
    assert list(chosen) == [1, 2, 0]  # feasible first, then by violation; unmeasured left out


def test_children_avoid_the_neighbourhood_of_infeasible_trials() -> None:
    space = SearchSpace.from_list([{"name": "x", "type": "float", "low": 0.0, "high": 1.0}])
    metric = (Metric("loss", goal="minimize"),)  # type: ignore[arg-type]
    good = [Trial(i, TrialState.COMPLETED, {"x": 0.5 + i * 1e-3}, {"loss": 0.0}) for i in range(6)]
    bad = [Trial(6 + i, TrialState.INFEASIBLE, {"x": 0.5 + 0.01 * (i - 2)}) for i in range(5)]
    request = SuggestRequest(space, metric, (*good, *bad), (), 20, 0, None)
    for name in ("genetic", "nsga2"):
        xs = [p["x"] for p in algo(name, space).suggest(request).params]
        near = [x for x in xs if 0.43 < float(x) < 0.57]
        assert len(near) < len(xs) / 2


def test_constraint_metrics_rank_violations_after_feasible_trials() -> None:
    space = SearchSpace.from_list([{"name": "x", "type": "float", "low": 0.0, "high": 1.0}])
    metrics = (
        *TWO,
        Metric("size", goal="minimize", role=MetricRole.CONSTRAINT, threshold=1.0),  # type: ignore[arg-type]
    )
    trials = [
        Trial(i, TrialState.COMPLETED, {"x": i / 10}, {"f1": i, "f2": -i, "size": float(i % 3)})
        for i in range(10)
    ]
    pop = algo("nsga2", space, {"population_size": 6}).population(
        SuggestRequest(space, metrics, tuple(trials), (), 1, 0)
    )
    xs = [space.decode(r)["x"] for r in pop.rows]
    feasible = [i / 10 for i in range(10) if i % 3 <= 1]
    assert set(xs) <= set(feasible)


def test_crossover_and_mutation_stay_in_the_cube_and_keep_categories_whole() -> None:
    rng = np.random.default_rng(0)
    cat = np.array([False, True, False])
    for _ in range(500):
        a, b = rng.random(3), rng.random(3)
        a[2] = np.nan
        child = mutate(rng, crossover(rng, a, b, cat, 15.0), cat, 0.5, 20.0)
        assert np.all((child >= 0) & (child <= 1))
        assert child[2] == b[2] or not np.isnan(child[2])


# ---- property test: sorting and crowding against brute force -------------------------------


def brute_fronts(ys: np.ndarray) -> list[int]:
    n = len(ys)

    def dominates(i: int, j: int) -> bool:
        return bool(np.all(ys[i] <= ys[j]) and np.any(ys[i] < ys[j]))

    fronts, left, front = [-1] * n, set(range(n)), 0
    while left:
        current = {i for i in left if not any(dominates(j, i) for j in left if j != i)}
        for i in current:
            fronts[i] = front
        left -= current
        front += 1
    return fronts


def brute_crowding(ys: np.ndarray) -> list[float]:
    n, m = ys.shape
    if n <= 2:
        return [math.inf] * n
    out = [0.0] * n
    for k in range(m):
        order = sorted(range(n), key=lambda i: (ys[i, k], i))
        lo, hi = ys[order[0], k], ys[order[-1], k]
        out[order[0]] = out[order[-1]] = math.inf
        for pos in range(1, n - 1):
            if hi > lo:
                out[order[pos]] += (ys[order[pos + 1], k] - ys[order[pos - 1], k]) / (hi - lo)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_sorting_and_crowding_match_a_brute_force_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 40)), int(rng.integers(2, 5))
    ys = rng.random((n, m))
    if seed % 2:  # ties and duplicates: a coarse grid of values
        ys = np.round(ys * 3) / 3
    assert list(nondominated_sort(ys)) == brute_fronts(ys)
    assert list(nondominated_ranks(ys)) == brute_fronts(ys)  # what rank_trials uses
    fronts = nondominated_sort(ys)
    for f in set(fronts):
        members = np.flatnonzero(fronts == f)
        got = crowding_distance(ys[members])
        assert np.allclose(got, brute_crowding(ys[members]), equal_nan=False)
