"""The GP's input warping (gp_warp) and trust region (gp_trust)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import optimize

from tests.unit.test_gp import mixed_design
from tuneforge.core.algorithms import create_algorithm, validate_algorithm
from tuneforge.core.algorithms.acquisition import Acquisition
from tuneforge.core.algorithms.base import SuggestRequest
from tuneforge.core.algorithms.gp import GPSearch
from tuneforge.core.algorithms.gp_model import GPModel, Posterior, Prior, SpaceEncoder, _Objective
from tuneforge.core.algorithms.gp_targets import History
from tuneforge.core.algorithms.gp_trust import (
    FAILURES,
    INIT,
    MAX,
    MIN,
    SUCCESSES,
    trust_box,
    trust_length,
)
from tuneforge.core.algorithms.gp_warp import Warp
from tuneforge.core.space import SearchSpace
from tuneforge.core.trials import Metric, Trial, TrialState

LOSS = (Metric("loss", goal="minimize"),)  # type: ignore[arg-type]
SPACE = [{"name": f"x{i}", "type": "float", "low": 0.0, "high": 1.0} for i in range(2)]


def done(number: int, params: Mapping[str, Any], loss: float) -> Trial:
    return Trial(
        number=number, state=TrialState.COMPLETED, params=dict(params), values={"loss": loss}
    )


def request(space: SearchSpace, trials: list[Trial], seed: int = 0) -> SuggestRequest:
    return SuggestRequest(space, LOSS, tuple(trials), (), 1, seed, None)


# ---- warping --------------------------------------------------------------------------------
def test_the_warp_is_a_monotone_map_of_the_unit_interval_and_the_identity_at_one() -> None:
    x = np.linspace(0.0, 1.0, 101)[:, None]
    identity = Warp(np.array([0]), np.zeros(2))
    assert np.allclose(identity(x), x, atol=1e-6)
    bent = Warp(np.array([0]), np.log([0.3, 2.5]))  # steep at 0: inputs are squeezed by EPS
    w = bent(x)[:, 0]
    assert np.all(np.diff(w) > 0) and 0 <= w[0] < 0.05 and 0.95 < w[-1] <= 1.0
    assert np.all(np.isfinite(bent.slope(x))) and np.all(bent.slope(x) > 0)


def test_gradients_with_input_warping() -> None:
    X, y, cat = mixed_design()
    rng = np.random.default_rng(1)
    cols = np.flatnonzero(~cat)
    objective = _Objective(X, y, cat, Prior.default(4, 6), cols)
    theta = np.r_[np.log([0.4, 0.7, 1.0, 0.5]), 0.1, -3.0, 0.3, -0.2, 0.1, 0.4, -0.5, 0.2]
    numeric = optimize.approx_fprime(theta, lambda t: objective(t)[0], 1e-6)
    assert np.allclose(objective(theta)[1], numeric, rtol=1e-4, atol=1e-4)

    model = GPModel(X, theta, cat, warp_cols=cols)
    posterior = Posterior.fit(model, y).with_pending(np.array([0.2, 0.7, 0.5, 0.4]), 1e-6)
    acq = Acquisition(posterior, float(Posterior.fit(model, y).mean_at_train().min()))
    F = rng.random((3, 4))
    F[:, 2] = 0.5
    _, grads = acq.value_and_grad(F)
    for i in range(3):
        num = optimize.approx_fprime(F[i], lambda x: float(acq(x[None, :])[0]), 1e-7)
        assert np.allclose(grads[i, ~cat], num[~cat], rtol=1e-3, atol=1e-4)


def branin01(p: Mapping[str, Any]) -> float:
    x1, x2 = 15.0 * p["x0"] - 5.0, 15.0 * p["x1"]
    b, c, t = 5.1 / (4 * math.pi**2), 5.0 / math.pi, 1.0 / (8 * math.pi)
    return float((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10)


def run(options: dict[str, Any], n: int, seed: int) -> list[float]:
    space = SearchSpace.from_list(SPACE)
    algo = create_algorithm("gp", validate_algorithm("gp", options, space), space)
    trials: list[Trial] = []
    state = None
    while len(trials) < n:
        s = algo.suggest(SuggestRequest(space, LOSS, tuple(trials), (), 1, seed, state))
        state = s.state
        trials += [done(len(trials), p, branin01(p)) for p in s.params]
    return [t.values["loss"] for t in trials if t.values is not None]


def test_a_warped_gp_is_deterministic_and_finds_the_branin_basin() -> None:
    first = run({"input_warping": True}, 25, seed=3)
    assert first == run({"input_warping": True}, 25, seed=3)
    assert min(first) - 0.397887 < 0.5  # random search's median over 25 points is ~2


# ---- trust region ---------------------------------------------------------------------------
def test_the_trust_length_doubles_on_successes_halves_on_failures_and_restarts() -> None:
    startup = [5.0, 4.0]
    wins = [3.0, 2.0, 1.0]  # SUCCESSES improvements in a row
    assert SUCCESSES == 3 and trust_length(np.array(startup + wins), 2, 2) == 2 * INIT
    assert trust_length(np.array(startup + wins * 3), 2, 2) <= MAX
    losses = [9.0] * FAILURES
    assert trust_length(np.array(startup + losses), 2, 2) == INIT / 2
    assert trust_length(np.array(startup + losses[:-1]), 2, 2) == INIT
    # d above FAILURES: d failures in a row are needed
    assert trust_length(np.array(startup + [9.0] * 5), 2, 6) == INIT
    assert trust_length(np.array(startup + [9.0] * 6), 2, 6) == INIT / 2
    # a tiny improvement is not a success; an infinite (unusable) value is a failure
    assert trust_length(np.array(startup + [3.9999] * 4), 2, 2) == INIT / 2
    assert trust_length(np.array(startup + [math.inf] * 4), 2, 2) == INIT / 2
    halvings = math.ceil(math.log2(INIT / MIN))
    restarted = trust_length(np.array(startup + [9.0] * (FAILURES * halvings)), 2, 2)
    assert restarted == INIT


def test_the_box_follows_the_lengthscales_and_stays_in_the_cube() -> None:
    lo, hi = trust_box(
        np.array([0.5, 0.05, 0.3]), 0.2, np.log([0.1, 0.4, 1.0]), np.array([True, True, False])
    )
    assert np.allclose(hi[:2] - lo[:2], [0.1, 0.3]) or np.isclose(lo[1], 0.0)
    assert np.isclose(hi[0] - lo[0], 0.2 * 0.1 / 0.2)  # geometric mean of 0.1 and 0.4 is 0.2
    assert lo[1] == 0.0 and np.isclose(hi[1], 0.05 + 0.2)
    assert lo[2] == 0.0 and hi[2] == 1.0


def stalled_history(space: SearchSpace) -> list[Trial]:
    """Five spread points, one good one, then many worse: the box has shrunk around the
    good point."""
    rng = np.random.default_rng(5)
    trials = [done(i, {"x0": a, "x1": b}, 50.0 + i) for i, (a, b) in enumerate(rng.random((5, 2)))]
    trials.append(done(5, {"x0": 0.3, "x1": 0.6}, 1.0))
    for i, (a, b) in enumerate(rng.random((20, 2))):
        trials.append(done(6 + i, {"x0": a, "x1": b}, 2.0 + float(rng.random())))
    return trials


def test_the_suggestion_lies_in_the_trust_region() -> None:
    space = SearchSpace.from_list(SPACE)
    trials = stalled_history(space)
    boxed = validate_algorithm("gp", {"trust_region": True}, space)
    algo = create_algorithm("gp", boxed, space)
    got = algo.suggest(request(space, trials))
    theta = np.array(got.state["theta"]["objective"])  # type: ignore[index]
    values = np.array([t.values["loss"] for t in trials if t.values is not None])
    length = trust_length(values, 5, 2)
    assert length == INIT / 2**5  # 20 failures in a row
    lo, hi = trust_box(np.array([0.3, 0.6]), length, theta[:2], np.array([True, True]))
    u = space.encode(got.params[0])
    assert np.all(u >= lo - 1e-12) and np.all(u <= hi + 1e-12), (u, lo, hi)
    free = create_algorithm("gp", validate_algorithm("gp", {"trust_region": False}, space), space)
    assert free.suggest(request(space, trials)).params != got.params


def test_no_trust_region_on_a_plateau() -> None:
    space = SearchSpace.from_list(SPACE)
    encoder = SpaceEncoder(space)
    rng = np.random.default_rng(0)
    steps = [
        done(i, {"x0": a, "x1": b}, float(round(3 * a)))
        for i, (a, b) in enumerate(rng.random((30, 2)))
    ]
    smooth = [
        done(i, {"x0": a, "x1": b}, 3 * a + b) for i, (a, b) in enumerate(rng.random((30, 2)))
    ]
    gp = GPSearch({"trust_region": True})
    for trials, expect_box in ((steps, False), (smooth, True)):
        history = History.collect(request(space, trials), encoder)
        model = GPModel(history.F, np.r_[np.log([0.5, 0.5]), 0.0, -6.0], encoder.cat)
        assert (gp._trust_box(history, model, encoder) is not None) == expect_box


def test_no_trust_region_with_a_categorical_parameter() -> None:
    space = SearchSpace.from_list(
        [*SPACE, {"name": "c", "type": "categorical", "values": ["a", "b"]}]
    )
    encoder = SpaceEncoder(space)
    rng = np.random.default_rng(0)
    trials = [
        done(i, {"x0": a, "x1": b, "c": "ab"[i % 2]}, 3 * a + b + i % 2)
        for i, (a, b) in enumerate(rng.random((30, 2)))
    ]
    history = History.collect(request(space, trials), encoder)
    model = GPModel(history.F, np.r_[np.log([0.5, 0.5, 1.0]), 0.0, -6.0], encoder.cat)
    assert GPSearch({"trust_region": True})._trust_box(history, model, encoder) is None
