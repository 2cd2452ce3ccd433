"""Best trials and the Pareto front."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from tuneforge.core.analysis import best_trials, dominates, is_better, is_feasible, pareto_front
from tuneforge.core.trials import Goal, Metric, MetricRole, Trial, TrialState

ACC = Metric("acc", Goal.MAXIMIZE)
LOSS = Metric("loss", Goal.MINIMIZE)
LATENCY = Metric("latency", Goal.MINIMIZE)


def trial(
    number: int, values: Mapping[str, float] | None, state: TrialState = TrialState.COMPLETED
) -> Trial:
    """A trial with final ``values``."""
    return Trial(number=number, state=state, params={}, values=values)


def numbers(trials: Sequence[Trial]) -> list[int]:
    """The trial numbers, in order."""
    return [t.number for t in trials]


def brute_force_front(points: np.ndarray, maximize: Sequence[bool]) -> list[int]:
    """The Pareto front by the definition, one pair at a time, independent of the module."""

    def no_worse(x: float, y: float, up: bool) -> bool:
        return x >= y if up else x <= y

    def beats(q: Sequence[float], p: Sequence[float]) -> bool:
        pairs = list(zip(q, p, maximize, strict=True))
        return all(no_worse(x, y, up) for x, y, up in pairs) and any(x != y for x, y, _ in pairs)

    return [i for i, p in enumerate(points) if not any(beats(q, p) for q in points)]


# --- pareto_front ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_pareto_front_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    d = int(rng.integers(1, 5))
    # Few distinct levels: plenty of ties in a column and fully duplicated rows.
    points = rng.integers(0, 5, size=(n, d)).astype(float)
    points[rng.integers(0, n, size=n // 4)] = points[0]
    maximize = [bool(b) for b in rng.integers(0, 2, size=d)]
    front = pareto_front(points, maximize)
    assert front.tolist() == brute_force_front(points, maximize)


@pytest.mark.parametrize("seed", range(3))
def test_pareto_front_continuous_data_spans_chunks(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    points = rng.normal(size=(600, 2))  # more rows than one chunk
    assert pareto_front(points, [True, False]).tolist() == brute_force_front(points, [True, False])


def test_pareto_front_small_cases() -> None:
    assert pareto_front(np.empty((0, 2)), [True, True]).tolist() == []
    assert pareto_front(np.array([[1.0, 1.0]] * 3), [True, False]).tolist() == [0, 1, 2]
    one_d = np.array([[3.0], [1.0], [3.0], [2.0]])
    assert pareto_front(one_d, [True]).tolist() == [0, 2]
    assert pareto_front(one_d, [False]).tolist() == [1]
    trade_off = np.array([[1.0, 5.0], [2.0, 4.0], [2.0, 5.0], [0.0, 0.0]])
    assert pareto_front(trade_off, [True, True]).tolist() == [2]
    assert pareto_front(trade_off, [False, False]).tolist() == [3]
    assert pareto_front(trade_off, [True, False]).tolist() == [1, 3]


def test_pareto_front_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        pareto_front(np.zeros((3, 2)), [True])
    with pytest.raises(ValueError, match="shape"):
        pareto_front(np.zeros(3), [True])


def test_pareto_front_handles_thousands_of_points() -> None:
    points = np.random.default_rng(7).normal(size=(3000, 3))
    front = pareto_front(points, [True, True, False])
    assert 0 < len(front) < 3000
    assert np.all(np.diff(front) > 0)


# --- single objective ------------------------------------------------------------------


def test_single_objective_maximize_and_minimize() -> None:
    trials = [trial(0, {"acc": 0.7}), trial(1, {"acc": 0.9}), trial(2, {"acc": 0.8})]
    assert numbers(best_trials(trials, [ACC])) == [1]
    low = [trial(t.number, {"loss": t.values["acc"]}) for t in trials]  # type: ignore[index]
    assert numbers(best_trials(low, [LOSS])) == [0]


def test_single_objective_ties_go_to_the_lower_number() -> None:
    trials = [trial(5, {"acc": 0.9}), trial(2, {"acc": 0.9}), trial(7, {"acc": 0.1})]
    assert numbers(best_trials(trials, [ACC])) == [2]


def test_only_completed_trials_count() -> None:
    trials = [
        trial(0, {"acc": 0.99}, TrialState.PRUNED),
        trial(1, {"acc": 0.98}, TrialState.FAILED),
        trial(2, {"acc": 0.97}, TrialState.INFEASIBLE),
        trial(3, {"acc": 0.96}, TrialState.ACTIVE),
        trial(4, None),
        trial(5, {"other": 1.0}),
        trial(6, {"acc": 0.5}),
    ]
    assert numbers(best_trials(trials, [ACC])) == [6]
    assert best_trials(trials[:5], [ACC]) == []
    assert best_trials([], [ACC]) == []


def test_tracked_metrics_do_not_matter() -> None:
    tracked = Metric("time", Goal.MINIMIZE, role=MetricRole.TRACKED)
    trials = [trial(0, {"acc": 0.5}), trial(1, {"acc": 0.6, "time": 99.0})]
    assert numbers(best_trials(trials, [ACC, tracked])) == [1]


def test_constraints_exclude_infeasible_trials() -> None:
    memory = Metric("memory", Goal.MINIMIZE, role=MetricRole.CONSTRAINT, threshold=100.0)
    recall = Metric("recall", Goal.MAXIMIZE, role=MetricRole.CONSTRAINT, threshold=0.5)
    metrics = [ACC, memory, recall]
    trials = [
        trial(0, {"acc": 0.99, "memory": 150.0, "recall": 0.9}),  # too much memory
        trial(1, {"acc": 0.98, "memory": 50.0, "recall": 0.4}),  # recall too low
        trial(2, {"acc": 0.97, "memory": 50.0}),  # recall unknown
        trial(3, {"acc": 0.80, "memory": 100.0, "recall": 0.5}),  # on both thresholds
        trial(4, {"acc": 0.70, "memory": 10.0, "recall": 1.0}),
    ]
    assert [is_feasible(t, metrics) for t in trials] == [False, False, False, True, True]
    assert numbers(best_trials(trials, metrics)) == [3]
    assert numbers(best_trials(trials, [ACC])) == [0]


# --- several objectives ----------------------------------------------------------------


def test_multi_objective_front_sorted_by_number() -> None:
    trials = [
        trial(9, {"acc": 0.9, "latency": 30.0}),
        trial(3, {"acc": 0.8, "latency": 10.0}),
        trial(4, {"acc": 0.8, "latency": 20.0}),  # dominated by 3
        trial(1, {"acc": 0.7, "latency": 5.0}),
        trial(6, {"acc": 0.95, "latency": 50.0}, TrialState.PRUNED),
        trial(8, {"acc": 0.9, "latency": 30.0}),  # duplicate of 9: both on the front
    ]
    assert numbers(best_trials(trials, [ACC, LATENCY])) == [1, 3, 8, 9]


def test_multi_objective_respects_constraints() -> None:
    size = Metric("size", Goal.MINIMIZE, role=MetricRole.CONSTRAINT, threshold=10.0)
    trials = [
        trial(0, {"acc": 0.99, "latency": 1.0, "size": 11.0}),  # would dominate all
        trial(1, {"acc": 0.9, "latency": 30.0, "size": 1.0}),
        trial(2, {"acc": 0.8, "latency": 10.0, "size": 1.0}),
    ]
    assert numbers(best_trials(trials, [ACC, LATENCY, size])) == [1, 2]


def test_best_trials_needs_an_objective() -> None:
    constraint = Metric("memory", Goal.MINIMIZE, role=MetricRole.CONSTRAINT, threshold=1.0)
    with pytest.raises(ValueError, match="objective"):
        best_trials([trial(0, {"memory": 0.5})], [constraint])


def test_helpers() -> None:
    assert is_better({"acc": 0.9}, {"acc": 0.8}, ACC)
    assert not is_better({"loss": 0.9}, {"loss": 0.8}, LOSS)
    assert not is_better({"acc": 0.8}, {"acc": 0.8}, ACC)
    assert dominates([1.0, 1.0], [1.0, 2.0], [False, False])
    assert not dominates([1.0, 2.0], [1.0, 2.0], [False, False])
    assert not dominates([2.0, 1.0], [1.0, 2.0], [True, True])
