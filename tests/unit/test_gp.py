"""GP search: options, determinism, optimization quality against random search, batches,
in-flight trials, constraints, several objectives, awkward histories and the maths."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.spatial.distance import pdist

from bench.problems import HARTMANN_MIN, branin, hartmann6
from tuneforge.core.algorithms import (
    Suggestion,
    SuggestRequest,
    create_algorithm,
    validate_algorithm,
)
from tuneforge.core.algorithms.acquisition import Acquisition, Constraint, log_h
from tuneforge.core.algorithms.gp import default_startup
from tuneforge.core.algorithms.gp_model import (
    GPModel,
    Posterior,
    Prior,
    SpaceEncoder,
    _Objective,
)
from tuneforge.core.algorithms.gp_targets import History, compress_outliers, select_training
from tuneforge.core.algorithms.sobol import SobolSearch
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.space import SearchSpace
from tuneforge.core.trials import Metric, MetricRole, Trial, TrialState

Objective = Callable[[Mapping[str, Any]], float]
LOSS = (Metric("loss", goal="minimize"),)  # type: ignore[arg-type]


def floats(d: int, low: float = 0.0, high: float = 1.0) -> list[dict[str, Any]]:
    return [{"name": f"x{i}", "type": "float", "low": low, "high": high} for i in range(d)]


BRANIN_SPACE: list[dict[str, Any]] = [
    {"name": "x0", "type": "float", "low": -5, "high": 10},
    {"name": "x1", "type": "float", "low": 0, "high": 15},
]
BRANIN_MIN = 0.397887

_Q_CENTRE = np.array([0.3, -0.5, 0.7, 0.1, -0.2])
_Q_WEIGHT = np.array([1.0, 2.0, 3.0, 4.0, 5.0])


def quadratic5(p: Mapping[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(5)])
    return float(np.sum(_Q_WEIGHT * (x - _Q_CENTRE) ** 2))


def make(
    specs: Sequence[Mapping[str, Any]], name: str = "gp", **options: Any
) -> tuple[Any, SearchSpace]:
    space = SearchSpace.from_list(specs)
    return create_algorithm(name, validate_algorithm(name, options, space), space), space


def ask(
    algo: Any,
    space: SearchSpace,
    completed: Sequence[Trial] = (),
    in_flight: Sequence[Trial] = (),
    *,
    count: int = 1,
    seed: int = 0,
    state: Mapping[str, Any] | None = None,
    metrics: tuple[Metric, ...] = LOSS,
) -> Suggestion:
    request = SuggestRequest(space, metrics, tuple(completed), tuple(in_flight), count, seed, state)
    return algo.suggest(request)  # type: ignore[no-any-return]


def done(number: int, params: Mapping[str, Any], **values: float) -> Trial:
    return Trial(number=number, state=TrialState.COMPLETED, params=dict(params), values=values)


def random_history(space: SearchSpace, f: Objective, n: int, seed: int = 0) -> list[Trial]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = space.sample(rng)
        out.append(done(i, p, loss=f(p)))
    return out


def optimize_loop(
    name: str, specs: Sequence[Mapping[str, Any]], f: Objective, n: int, seed: int
) -> list[float]:
    """Run ``n`` sequential trials; the losses in order."""
    algo, space = make(specs, name)
    history: list[Trial] = []
    state = None
    while len(history) < n:
        s = ask(algo, space, history, seed=seed, state=state)
        state = json.loads(json.dumps(s.state, allow_nan=False))  # as the service stores it
        history.extend(done(len(history), p, loss=f(p)) for p in s.params)
    return [t.values["loss"] for t in history if t.values is not None]


# ---- options --------------------------------------------------------------------------------
def test_defaults_and_valid_options() -> None:
    space = SearchSpace.from_list(floats(3))
    assert validate_algorithm("gp", {}, space) == {
        "n_startup": None,
        "n_candidates": 1024,
        "max_training_points": 300,
        "xi": 0.0,
        "input_warping": False,
        "trust_region": False,
    }
    opts = validate_algorithm("gp", {"n_startup": 3, "xi": 1, "n_candidates": 64}, space)
    assert opts["n_startup"] == 3 and opts["xi"] == 1.0 and opts["n_candidates"] == 64
    assert default_startup(space) == 6
    assert default_startup(SearchSpace.from_list(floats(1))) == 5
    assert default_startup(SearchSpace.from_list(floats(9))) == 10


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"n_trees": 3}, "algorithm_options.n_trees"),
        ({"n_startup": 0}, "algorithm_options.n_startup"),
        ({"n_startup": 2.5}, "algorithm_options.n_startup"),
        ({"n_startup": True}, "algorithm_options.n_startup"),
        ({"n_candidates": 8}, "algorithm_options.n_candidates"),
        ({"max_training_points": "300"}, "algorithm_options.max_training_points"),
        ({"max_training_points": 10**6}, "algorithm_options.max_training_points"),
        ({"xi": -0.1}, "algorithm_options.xi"),
        ({"xi": float("nan")}, "algorithm_options.xi"),
        ({"xi": False}, "algorithm_options.xi"),
        ({"input_warping": 1}, "algorithm_options.input_warping"),
        ({"trust_region": "yes"}, "algorithm_options.trust_region"),
    ],
)
def test_bad_options_are_rejected_naming_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        validate_algorithm("gp", options, SearchSpace.from_list(floats(2)))
    assert info.value.field == field


# ---- start-up and determinism ---------------------------------------------------------------
def test_startup_points_are_the_sobol_sequence_then_the_model_takes_over() -> None:
    algo, space = make(floats(2))
    sobol = SobolSearch({"scramble": True})
    first = ask(algo, space, count=3, seed=4)
    expected = ask(sobol, space, count=3, seed=4)
    assert first.params == expected.params and first.extra["phase"] == "startup"
    assert first.state is not None and first.state["sobol_index"] == 3
    history = [done(i, p, loss=float(i)) for i, p in enumerate(first.params)]
    second = ask(algo, space, history, count=2, seed=4, state=first.state)
    assert (
        second.params == ask(sobol, space, history, count=2, seed=4, state={"next_index": 3}).params
    )
    history += [done(3 + i, p, loss=float(i)) for i, p in enumerate(second.params)]
    third = ask(algo, space, history, seed=4, state=second.state)
    assert third.extra["phase"] == "model"
    assert third.state is not None and len(third.state["theta"]["objective"]) == 2 + 2


def test_the_same_request_gives_the_same_answer() -> None:
    algo, space = make(floats(4))
    history = random_history(space, quadratic_like, 12)
    busy = [
        Trial(number=99, state=TrialState.ACTIVE, params=space.sample(np.random.default_rng(5)))
    ]
    first = ask(algo, space, history, busy, count=3, seed=7)
    again = ask(make(floats(4))[0], space, history, busy, count=3, seed=7)
    assert first.params == again.params and first.state == again.state
    stored = json.loads(json.dumps(first.state, allow_nan=False))
    assert (
        ask(algo, space, history, busy, count=3, seed=7, state=stored).params
        == ask(algo, space, history, busy, count=3, seed=7, state=first.state).params
    )
    other_seed = ask(algo, space, history, busy, count=3, seed=8)
    assert other_seed.params != first.params


def quadratic_like(p: Mapping[str, Any]) -> float:
    return sum((float(v) - 0.3) ** 2 for v in p.values())


def test_a_malformed_state_is_ignored() -> None:
    algo, space = make(floats(3))
    history = random_history(space, quadratic_like, 8)
    bad = {"calls": "x", "sobol_index": -4, "theta": {"objective": ["a", None], "other": 3}}
    out = ask(algo, space, history, count=2, state=bad)
    assert len(out.params) == 2 and out.state is not None
    json.dumps(out.state, allow_nan=False)
    assert set(out.state["theta"]) == {"objective"}
    assert ask(algo, space, history, count=2, state={"theta": "nope"}).params == out.params


# ---- quality: clearly better than random search ---------------------------------------------
def mean_regret(name: str, specs: Any, f: Objective, best: float, n: int, seeds: range) -> float:
    return float(np.mean([min(optimize_loop(name, specs, f, n, s)) - best for s in seeds]))


def test_beats_random_search_on_branin() -> None:
    seeds = range(4)
    gp = mean_regret("gp", BRANIN_SPACE, branin, BRANIN_MIN, 30, seeds)
    rnd = mean_regret("random", BRANIN_SPACE, branin, BRANIN_MIN, 30, seeds)
    print(f"branin, 30 trials: gp regret {gp:.4f}, random {rnd:.4f}")
    assert gp < 0.2 and gp < rnd / 5


def test_beats_random_search_on_a_5d_quadratic() -> None:
    specs = floats(5, -1.0, 1.0)
    seeds = range(3)
    gp = mean_regret("gp", specs, quadratic5, 0.0, 35, seeds)
    rnd = mean_regret("random", specs, quadratic5, 0.0, 35, seeds)
    print(f"quadratic-5, 35 trials: gp regret {gp:.4f}, random {rnd:.4f}")
    assert gp < 0.3 and gp < rnd / 4


@pytest.mark.slow
def test_beats_random_search_on_hartmann6() -> None:
    seeds = range(3)
    gp = mean_regret("gp", floats(6), hartmann6, HARTMANN_MIN, 40, seeds)
    rnd = mean_regret("random", floats(6), hartmann6, HARTMANN_MIN, 40, seeds)
    print(f"hartmann-6, 40 trials: gp regret {gp:.4f}, random {rnd:.4f}")
    assert gp < 0.6 and gp < rnd / 2


def test_one_terrible_region_does_not_flatten_the_model() -> None:
    def spiky(p: Mapping[str, Any]) -> float:
        return 1e6 if p["x0"] > 9.8 or p["x1"] > 13 else branin(p)

    gp = mean_regret("gp", BRANIN_SPACE, spiky, BRANIN_MIN, 30, range(4))
    rnd = mean_regret("random", BRANIN_SPACE, spiky, BRANIN_MIN, 30, range(4))
    print(f"branin with 1e6 losses, 30 trials: gp regret {gp:.4f}, random {rnd:.4f}")
    assert gp < 0.6 and gp < rnd / 2


def test_compress_outliers_is_monotone_bounded_and_leaves_the_bulk_alone() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[rng.normal(size=30), 1e12, 50.0]
    out = compress_outliers(y)
    order = np.argsort(y)
    assert np.all(np.diff(out[order]) >= 0)
    assert np.array_equal(out[:30][y[:30] < 1.0], y[:30][y[:30] < 1.0])
    assert out[30] < np.median(y) + 15 and out[30] > out[31]
    assert np.array_equal(compress_outliers(np.ones(5)), np.ones(5))


# ---- feasibility --------------------------------------------------------------------------------
def feasibility_loop(mode: str, name: str, seed: int, n: int = 30) -> list[Trial]:
    """x > 0.6 is infeasible: reported as an infeasible trial, or as a constraint c = 1 - x >= 0.4."""
    algo, space = make(floats(2), name)
    metrics = (
        Metric("f", goal="minimize"),  # type: ignore[arg-type]
        Metric("c", goal="maximize", role=MetricRole.CONSTRAINT, threshold=0.4),  # type: ignore[arg-type]
    )
    history: list[Trial] = []
    state = None
    while len(history) < n:
        s = ask(algo, space, history, seed=seed, state=state, metrics=metrics)
        state = s.state
        p = s.params[0]
        x, y = p["x0"], p["x1"]
        f = (x - 0.3) ** 2 + (y - 0.5) ** 2 + 0.3 * math.sin(8 * x) * math.cos(5 * y)
        if mode == "state" and x > 0.6:
            history.append(Trial(number=len(history), state=TrialState.INFEASIBLE, params=p))
        else:
            history.append(done(len(history), p, f=f, c=1 - x))
    return history


@pytest.mark.parametrize("mode", ["state", "metric"])
def test_the_feasible_region_is_learned(mode: str) -> None:
    rates = {}
    for name in ("gp", "random"):
        late = [t for s in range(3) for t in feasibility_loop(mode, name, s)[-15:]]
        rates[name] = float(np.mean([t.params["x0"] <= 0.6 for t in late]))
    print(f"{mode}: share of feasible late suggestions {rates}")
    assert rates["gp"] >= 0.85 and rates["gp"] > rates["random"] + 0.15


def test_a_constrained_optimum_on_the_boundary_is_found() -> None:
    """Minimize the distance to (0.8, 0.8) subject to x + y <= 1: the optimum is (0.5, 0.5)."""
    metrics = (
        Metric("f", goal="minimize"),  # type: ignore[arg-type]
        Metric("c", goal="minimize", role=MetricRole.CONSTRAINT, threshold=1.0),  # type: ignore[arg-type]
    )
    regrets = {}
    for name in ("gp", "random"):
        out = []
        for seed in range(3):
            algo, space = make(floats(2), name)
            history: list[Trial] = []
            state = None
            while len(history) < 25:
                s = ask(algo, space, history, seed=seed, state=state, metrics=metrics)
                state = s.state
                x, y = s.params[0]["x0"], s.params[0]["x1"]
                f = (x - 0.8) ** 2 + (y - 0.8) ** 2
                history.append(done(len(history), s.params[0], f=f, c=x + y))
            feasible = [t.values["f"] for t in history if t.values and t.values["c"] <= 1.0]
            out.append(min(feasible) - 0.18)
        regrets[name] = float(np.mean(out))
    print(f"boundary optimum regret {regrets}")
    assert regrets["gp"] < 0.01 and regrets["gp"] < regrets["random"] / 5


def test_only_infeasible_results_still_give_valid_points() -> None:
    algo, space = make(floats(3), n_startup=2)
    rng = np.random.default_rng(1)
    history = [
        Trial(number=i, state=TrialState.INFEASIBLE, params=space.sample(rng)) for i in range(6)
    ]
    out = ask(algo, space, history, count=2)
    assert out.extra["phase"] == "startup" and len(out.params) == 2  # no objective value yet
    history.append(done(6, space.sample(rng), loss=1.0))
    out = ask(algo, space, history, count=2)
    assert out.extra["phase"] == "model" and all(space.validate_params(p) == p for p in out.params)


# ---- several objectives ------------------------------------------------------------------------
def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float] = (1.0, 1.0)) -> float:
    volume, level = 0.0, ref[1]
    for a, b in sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1]):
        if b < level:
            volume += (ref[0] - a) * (level - b)
            level = b
    return volume


def test_several_objectives_spread_along_the_pareto_front() -> None:
    metrics = (Metric("f1", goal="minimize"), Metric("f2", goal="maximize"))  # type: ignore[arg-type]
    volumes = {}
    for name in ("gp", "random"):
        out = []
        for seed in range(3):
            algo, space = make(floats(2), name)
            history: list[Trial] = []
            state = None
            while len(history) < 24:
                s = ask(algo, space, history, count=2, seed=seed, state=state, metrics=metrics)
                state = s.state
                for p in s.params:
                    x, y = p["x0"], p["x1"]
                    history.append(done(len(history), p, f1=x**2 + y, f2=-((x - 1) ** 2) - y))
            pts = [(t.values["f1"], -t.values["f2"]) for t in history if t.values]
            out.append(hypervolume(pts))
        volumes[name] = float(np.mean(out))
    print(f"hypervolume after 24 trials {volumes}")
    assert volumes["gp"] > volumes["random"] + 0.1


# ---- awkward histories and spaces ------------------------------------------------------------------
def test_one_completed_trial_is_enough_with_n_startup_1() -> None:
    algo, space = make(floats(3), n_startup=1)
    history = [done(0, {"x0": 0.5, "x1": 0.5, "x2": 0.5}, loss=3.0)]
    out = ask(algo, space, history, count=3)
    assert out.extra["phase"] == "model" and len(out.params) == 3
    assert len({space.key(p) for p in out.params} | {space.key(history[0].params)}) == 4


def test_equal_objective_values_still_explore() -> None:
    algo, space = make(floats(3))
    history = [
        done(t.number, t.params, loss=1.0) for t in random_history(space, quadratic_like, 10)
    ]
    out = ask(algo, space, history, count=4)
    U = np.array([space.encode(p) for p in out.params])
    assert np.all(np.isfinite(U)) and pdist(U).min() > 0.05


def test_only_categorical_parameters() -> None:
    specs: list[dict[str, Any]] = [
        {"name": "a", "type": "categorical", "values": list("abcdefghij")},
        {"name": "b", "type": "categorical", "values": list("uvwxyz")},
        {"name": "c", "type": "categorical", "values": [True, False]},
    ]
    algo, space = make(specs, n_candidates=32)  # 120 points: not enumerated with 32 candidates

    def score(p: Mapping[str, Any]) -> float:
        return float(p["a"] != "c") + float(p["b"] != "w") + 0.5 * float(p["c"])

    history = random_history(space, score, 10, seed=3)
    state = None
    for _ in range(15):
        s = ask(algo, space, history, state=state)
        state = s.state
        history.append(done(len(history), s.params[0], loss=score(s.params[0])))
    assert len({space.key(t.params) for t in history}) == len(history)
    assert min(t.values["loss"] for t in history if t.values) == 0.0


CONDITIONAL: list[dict[str, Any]] = [
    {"name": "lr", "type": "float", "low": 1e-5, "high": 0.1, "scale": "log"},
    {"name": "layers", "type": "int", "low": 1, "high": 4},
    {"name": "units", "type": "int", "low": 8, "high": 512, "scale": "log"},
    {"name": "opt", "type": "categorical", "values": ["adam", "sgd"]},
    {
        "name": "momentum",
        "type": "float",
        "low": 0.0,
        "high": 0.99,
        "condition": {"parent": "opt", "values": ["sgd"]},
    },
    {
        "name": "dropout",
        "type": "float",
        "low": 0.0,
        "high": 0.5,
        "step": 0.1,
        "condition": {"parent": "layers", "values": [3, 4]},
    },
]


def conditional_loss(p: Mapping[str, Any]) -> float:
    loss = (math.log10(p["lr"]) + 3) ** 2 + abs(math.log2(p["units"]) - 7)
    if p["opt"] == "sgd":
        loss += 2 * (p["momentum"] - 0.9) ** 2
    else:
        loss += 0.5
    return loss + 0.3 * p.get("dropout", 0.3)


def test_conditional_mixed_space_with_pruned_and_infeasible_trials() -> None:
    algo, space = make(CONDITIONAL)
    rng = np.random.default_rng(2)
    history: list[Trial] = []
    for i in range(12):
        p = space.sample(rng)
        state = [TrialState.COMPLETED, TrialState.PRUNED, TrialState.INFEASIBLE][i % 3]
        values = {"loss": conditional_loss(p)} if state != TrialState.INFEASIBLE else None
        history.append(Trial(number=i, state=state, params=p, values=values))
    saved = None
    for _ in range(10):
        s = ask(algo, space, history, count=2, state=saved)
        saved = s.state
        for p in s.params:
            assert space.validate_params(p) == p
            history.append(done(len(history), p, loss=conditional_loss(p)))
    keys = [space.key(t.params) for t in history]
    assert len(set(keys)) == len(keys)
    assert min(t.values["loss"] for t in history if t.values) < min(
        conditional_loss(t.params) for t in history[:12]
    )


def test_the_training_set_is_capped_keeping_the_best_third() -> None:
    algo, space = make(floats(3), max_training_points=60)
    history = random_history(space, quadratic_like, 200)
    out = ask(algo, space, history, count=2)
    assert len(out.params) == 2
    request = SuggestRequest(space, LOSS, tuple(history), (), 1, 0)
    hist = History.collect(request, SpaceEncoder(space))
    y = hist.Y[:, 0]
    rows = select_training(hist, y, 60, np.random.default_rng(0))
    assert len(rows) == 60 and len(set(rows.tolist())) == 60
    assert set(np.argsort(y)[:20].tolist()) <= set(rows.tolist())


# ---- the maths ---------------------------------------------------------------------------------------
def test_log_h_matches_the_direct_formula_and_stays_finite() -> None:
    z = np.linspace(-30, 5, 200)
    direct = np.log(stats.norm.pdf(z) + z * stats.norm.cdf(z))
    value, slope = log_h(z)
    ok = np.isfinite(direct) & (z > -20)
    assert np.allclose(value[ok], direct[ok], rtol=1e-6, atol=1e-9)
    assert np.allclose(slope, stats.norm.cdf(z) / np.exp(value), rtol=1e-6)
    far = log_h(np.array([-1e3, -1e6, -1e12]))
    assert np.all(np.isfinite(far[0])) and np.all(np.isfinite(far[1]))
    assert np.all(np.diff(far[0]) < 0)


def mixed_design() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """25 seeded points of three numeric columns and a three-level categorical one (the
    third), their targets and the categorical mask: the gradient checks' data."""
    rng = np.random.default_rng(0)
    cat = np.array([False, False, True, False])
    X = rng.random((25, 4))
    X[:, 2] = (rng.integers(0, 3, 25) + 0.5) / 3
    return X, rng.standard_normal(25), cat


def test_gradients_of_the_marginal_likelihood_and_the_acquisition() -> None:
    X, y, cat = mixed_design()
    rng = np.random.default_rng(1)
    objective = _Objective(X, y, cat, Prior.default(4))
    theta = np.r_[np.log([0.3, 0.5, 1.0, 2.0]), 0.1, math.log(0.01)]
    numeric = optimize.approx_fprime(theta, lambda t: objective(t)[0], 1e-6)
    assert np.allclose(objective(theta)[1], numeric, rtol=1e-4, atol=1e-4)

    model = GPModel(X, theta, cat)
    posterior = Posterior.fit(model, y).with_pending(np.array([0.2, 0.7, 0.5, 0.4]), 1e-6)
    other = Posterior.fit(GPModel(X, theta + 0.2, cat), rng.standard_normal(25))
    best = float(Posterior.fit(model, y).mean_at_train().min())
    for acq in (
        Acquisition(posterior, best, [Constraint(other, 0.3)]),
        Acquisition(posterior, best - 3.0, []),
        Acquisition(posterior, None, [Constraint(other, -0.5)]),
    ):
        F = rng.random((3, 4))
        F[:, 2] = 0.5
        _, grads = acq.value_and_grad(F)
        for i in range(3):
            num = optimize.approx_fprime(F[i], lambda x, a=acq: float(a(x[None, :])[0]), 1e-7)
            assert np.allclose(grads[i, ~cat], num[~cat], rtol=1e-3, atol=1e-4)


def test_the_posterior_mean_survives_kriging_believer_fantasies() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.random((15, 3)), rng.standard_normal(15)
    cat = np.zeros(3, dtype=bool)
    base = Posterior.fit(GPModel(X, np.r_[np.log([0.4] * 3), 0.0, -6.0], cat), y)
    pending = base.with_pending(rng.random(3), 1e-6).with_pending(rng.random(3), 1e-6)
    F = rng.random((20, 3))
    m0, v0 = base.predict(F)
    m1, v1 = pending.predict(F)
    assert np.allclose(m0, m1) and np.all(v1 <= v0 + 1e-12)


# ---- latency (printed; the targets are measured in bench/) -----------------------------------------
def test_latency_is_printed() -> None:
    algo, space = make(floats(5))
    for n in (100, 1000):
        history = random_history(space, quadratic_like, n)
        state = ask(algo, space, history[:-1]).state  # the warm state of the previous call
        times = []
        for _ in range(3):
            start = time.perf_counter()
            ask(algo, space, history, state=state)
            times.append(time.perf_counter() - start)
        print(f"gp suggest with {n} completed trials on 5 params: median {np.median(times):.3f} s")


def test_from_params_many_gives_the_rows_of_from_params_one_by_one() -> None:
    """The column-wise encoding of a history (History.collect) is the same numbers as
    encoding each parameter set alone, conditional and unreadable sets included."""
    space = SearchSpace.from_list(
        [
            {"name": "a", "type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
            {"name": "c", "type": "int", "low": 1, "high": 20},
            {"name": "k", "type": "categorical", "values": ["x", "y"]},
            {"name": "q", "type": "float", "low": 0, "high": 1, "step": 0.1,
             "condition": {"parent": "k", "values": ["y"]}},
        ]
    )  # fmt: skip
    encoder = SpaceEncoder(space)
    sets: list[dict[str, Any]] = [
        {"a": 0.01, "c": 3, "k": "x"},
        {"a": 0.5, "c": 20, "k": "y", "q": 0.3},
        {"a": 0.01, "c": 3, "k": "w"},  # not a category of k: unreadable
        {"a": -1.0, "c": 3, "k": "x"},  # outside the log range: unreadable
        {"a": 1e-4, "c": 1, "k": "y", "q": 1.0},
    ]
    U, F, A, readable = encoder.from_params_many(sets)
    assert readable.tolist() == [True, True, False, False, True]
    for i, params in enumerate(sets):
        if not readable[i]:
            with pytest.raises((InvalidSpec, ValueError)):
                encoder.from_params(params)
            continue
        u, f, a = encoder.from_params(params)
        assert np.array_equal(U[i], u) and np.array_equal(F[i], f) and np.array_equal(A[i], a)
