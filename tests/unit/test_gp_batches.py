"""GP batches, in-flight trials, hyperparameter reuse, and the ``auto`` rule."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from tests.unit.test_gp import LOSS, ask, done, floats, make, quadratic_like, random_history
from tuneforge.core.algorithms import SuggestRequest
from tuneforge.core.algorithms import gp as gp_module
from tuneforge.core.algorithms.acquisition import PENDING_RADIUS
from tuneforge.core.algorithms.gp import REFIT_GROWTH, REUSE_FROM, WARP_FROM_IN_FLIGHT
from tuneforge.core.algorithms.gp_targets import compress_outliers, power_warp
from tuneforge.core.space import SearchSpace
from tuneforge.core.trials import Trial, TrialState


# ---- batches and in-flight trials -----------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_a_batch_of_eight_is_spread_out(seed: int) -> None:
    algo, space = make(floats(5))
    history = random_history(space, quadratic_like, 12, seed)
    batch = ask(algo, space, history, count=8, seed=seed).params
    assert len({space.key(p) for p in batch}) == 8
    U = np.array([space.encode(p) for p in batch])
    print(f"seed {seed}: smallest distance in the batch {pdist(U).min():.3f}")
    assert pdist(U).min() > 0.05
    used = np.array([space.encode(t.params) for t in history])
    assert np.min(np.linalg.norm(U[:, None, :] - used[None, :, :], axis=2)) > 1e-3


def test_in_flight_points_push_the_next_suggestion_away() -> None:
    algo, space = make(floats(5))
    history = random_history(space, quadratic_like, 12)
    alone = ask(algo, space, history).params[0]
    busy = [Trial(number=50, state=TrialState.ACTIVE, params=alone)]
    after = ask(algo, space, history, busy).params[0]
    distance = np.linalg.norm(space.encode(alone) - space.encode(after))
    assert distance > 0.05
    assert ask(algo, space, history, count=2).params[0] == alone  # a batch starts the same way


def test_a_batch_near_the_optimum_keeps_its_points_apart() -> None:
    """A sharp, well-explored optimum: every point of a batch of 8 and every in-flight
    trial stays PENDING_RADIUS apart, while completed trials may be approached closer."""
    algo, space = make(floats(2))
    f = lambda p: (p["x0"] - 0.3) ** 2 + (p["x1"] - 0.7) ** 2  # noqa: E731
    history: list[Trial] = []
    state = None
    for _ in range(20):
        out = ask(algo, space, history, state=state)
        state = out.state
        history.append(done(len(history), out.params[0], loss=f(out.params[0])))
    busy = [Trial(number=99, state=TrialState.ACTIVE, params={"x0": 0.32, "x1": 0.68})]
    batch = ask(algo, space, history, busy, count=8, state=state).params
    U = np.array([space.encode(p) for p in [*batch, busy[0].params]])
    assert pdist(U).min() >= PENDING_RADIUS
    used = np.array([space.encode(t.params) for t in history])
    assert np.min(np.linalg.norm(U[:-1, None, :] - used[None], axis=2)) < PENDING_RADIUS


def test_power_warp_is_monotone_and_pulls_in_a_long_tail() -> None:
    rng = np.random.default_rng(0)
    y = np.exp(2.0 * rng.normal(size=40))  # a long tail of poor (large) values
    out = power_warp(y)
    order = np.argsort(y)
    assert np.all(np.diff(out[order]) > 0)
    skew = lambda v: float(np.mean(((v - v.mean()) / v.std()) ** 3))  # noqa: E731
    print(f"skewness {skew(y):.2f} -> {skew(out):.2f}")
    assert skew(y) > 2 and abs(skew(out)) < skew(y) / 3
    extreme = power_warp(np.r_[rng.normal(size=20), 1e12, -1e9])
    assert np.all(np.isfinite(extreme))
    assert np.array_equal(power_warp(np.ones(5)), compress_outliers(np.ones(5)))


def _skewed(p: dict[str, Any]) -> float:
    return float(np.exp(4.0 * quadratic_like(p)))


@pytest.mark.parametrize(("busy", "count", "warped"), [(3, 1, False), (4, 1, True), (0, 5, True)])
def test_the_objective_is_warped_from_four_blind_picks_on(
    busy: int, count: int, warped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Picks made without the results of WARP_FROM_IN_FLIGHT or more others (in flight or
    earlier in the batch) model the Yeo-Johnson warped objective: switching the warp off
    changes them; with fewer it was never on."""
    assert WARP_FROM_IN_FLIGHT == 4
    algo, space = make(floats(3))
    history = random_history(space, _skewed, 15)
    in_flight = [
        Trial(
            number=100 + i, state=TrialState.ACTIVE, params=space.sample(np.random.default_rng(i))
        )
        for i in range(busy)
    ]
    default = ask(algo, space, history, in_flight, count=count).params
    monkeypatch.setattr(gp_module, "WARP_FROM_IN_FLIGHT", 10**6)
    never = ask(algo, space, history, in_flight, count=count).params
    assert (default != never) == warped


def test_hyperparameters_are_reused_until_the_data_grows_by_five_percent() -> None:
    algo, space = make(floats(3))
    history = random_history(space, quadratic_like, REUSE_FROM)
    first = ask(algo, space, history).state
    assert first is not None and first["fitted_on"] == {"objective": REUSE_FROM}
    grown = random_history(space, quadratic_like, REUSE_FROM + 4, seed=1)
    same = ask(algo, space, [*history, *grown[REUSE_FROM:]], state=first).state
    assert same is not None and same["theta"] == first["theta"]
    assert same["fitted_on"] == {"objective": REUSE_FROM}
    n_refit = math.ceil(REUSE_FROM * (1 + REFIT_GROWTH))
    more = [*history, *random_history(space, quadratic_like, n_refit, seed=2)[REUSE_FROM:]]
    refit = ask(algo, space, more, state=first).state
    assert refit is not None and refit["fitted_on"] == {"objective": n_refit}
    assert refit["theta"] != first["theta"]


def test_a_capped_training_set_is_still_refitted_as_the_study_grows() -> None:
    """Past max_training_points the training set stops growing; the refit cadence
    follows the usable trials, so the hyperparameters do not freeze for good."""
    algo, space = make(floats(3), max_training_points=REUSE_FROM)
    history = random_history(space, quadratic_like, REUSE_FROM)
    first = ask(algo, space, history).state
    assert first is not None
    n_more = math.ceil(REUSE_FROM * (1 + REFIT_GROWTH))
    longer = random_history(space, quadratic_like, n_more, seed=3)
    refit = ask(algo, space, [*history, *longer[REUSE_FROM:]], state=first).state
    assert refit is not None and refit["fitted_on"] == {"objective": n_more}
    assert refit["theta"] != first["theta"]


def test_small_finite_spaces_never_repeat_a_used_point() -> None:
    specs: list[dict[str, Any]] = [
        {"name": "a", "type": "int", "low": 0, "high": 4},
        {"name": "b", "type": "categorical", "values": ["x", "y", "z"]},
    ]
    algo, space = make(specs, n_startup=3)
    points = list(space.iter_grid())
    history = [done(i, p, loss=float(i % 4)) for i, p in enumerate(points[:6])]
    busy = [
        Trial(number=20 + i, state=TrialState.REQUESTED, params=p)
        for i, p in enumerate(points[6:9])
    ]
    got = ask(algo, space, history, busy, count=6).params
    used = {space.key(p) for p in points[:9]}
    keys = [space.key(p) for p in got]
    assert len(set(keys)) == 6 and not used & set(keys)


# ---- auto ---------------------------------------------------------------------------------------
def test_auto_keeps_mostly_categorical_spaces_on_the_gp_and_conditional_ones_on_tpe() -> None:
    from tuneforge.core.algorithms.auto import choose

    cats = [{"name": f"c{i}", "type": "categorical", "values": ["a", "b", "c"]} for i in range(3)]
    flat = SearchSpace.from_list([*cats, *floats(1)])
    child = {
        "name": "y",
        "type": "float",
        "low": 0,
        "high": 1,
        "condition": {"parent": "c0", "values": ["a"]},
    }
    nested = SearchSpace.from_list([*cats, child])
    for space, expected in ((flat, "gp"), (nested, "tpe")):
        request = SuggestRequest(space, LOSS, (), (), 1, 0)
        assert choose(request) == expected


def test_auto_mixes_in_tpe_on_a_plateau_and_not_on_a_smooth_objective() -> None:
    from tuneforge.core.algorithms import get_algorithm
    from tuneforge.core.algorithms.auto import PLATEAU_MIN_TRIALS, choose, on_plateau

    space = SearchSpace.from_list(floats(2))
    rng = np.random.default_rng(0)
    points = [space.sample(rng) for _ in range(PLATEAU_MIN_TRIALS + 1)]

    def steps(p: dict[str, Any]) -> float:
        return float(np.floor(4 * p["x0"]) + np.floor(4 * p["x1"]))

    def smooth(p: dict[str, Any]) -> float:
        return (p["x0"] - 0.3) ** 2 + (p["x1"] - 0.6) ** 2

    for f, plateau in ((steps, True), (smooth, False)):
        for n in (PLATEAU_MIN_TRIALS, PLATEAU_MIN_TRIALS + 1):
            history = tuple(done(i, p, loss=f(p)) for i, p in enumerate(points[:n]))
            request = SuggestRequest(space, LOSS, history, (), 1, 0)
            assert on_plateau(np.array([f(p) for p in points[:n]])) is plateau
            expected = "tpe" if plateau and n % 2 == 1 else "gp"
            assert choose(request) == expected
            got = get_algorithm("auto")({}).suggest(request)
            assert got.extra["algorithm"] == expected
            again = get_algorithm("auto")({}).suggest(request)
            assert got.decisions == again.decisions  # seeded: same history, same answer
    short = np.zeros(PLATEAU_MIN_TRIALS - 1)
    assert not on_plateau(short)  # too few trials to tell


def test_the_plateau_test_reads_maximized_objectives_the_right_way_round() -> None:
    from tuneforge.core.algorithms.auto import objective_values
    from tuneforge.core.trials import Metric

    space = SearchSpace.from_list(floats(1))
    acc = (Metric("acc", goal="maximize"),)  # type: ignore[arg-type]
    history = (done(0, {"x0": 0.1}, acc=0.9), done(1, {"x0": 0.2}, acc=0.5))
    values = objective_values(SuggestRequest(space, acc, history, (), 1, 0))
    assert list(values) == [-0.9, -0.5]
