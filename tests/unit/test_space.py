"""Search spaces: validation rules, the unit-cube encoding, sampling, conditions and grids."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from tuneforge.core.errors import InvalidSpec
from tuneforge.core.space import SearchSpace

FLOAT = {"name": "x", "type": "float", "low": 0.0, "high": 1.0}
CAT = {"name": "c", "type": "categorical", "values": ["a", "b"]}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not ...}


def chain(depth: int) -> list[dict[str, Any]]:
    """``depth`` categorical parameters, each conditional on the previous one."""
    out: list[dict[str, Any]] = [{"name": "p0", "type": "categorical", "values": ["on", "off"]}]
    for i in range(1, depth + 1):
        cond = {"parent": f"p{i - 1}", "values": ["on"]}
        out.append({"name": f"p{i}", "type": "categorical", "values": ["on"], "condition": cond})
    return out


def cond(parent: str, *values: Any) -> dict[str, Any]:
    return {"parent": parent, "values": list(values)}


INVALID_SPECS: list[tuple[Any, str]] = [
    ("not a list", "parameters"),
    ([], "parameters"),
    ([with_(FLOAT, name=f"x{i}") for i in range(257)], "parameters"),
    (["x"], "parameters[0]"),
    ([with_(FLOAT, name=...)], "parameters[0].name"),
    ([with_(FLOAT, name=" x")], "parameters[0].name"),
    ([with_(FLOAT, name=3)], "parameters[0].name"),
    ([with_(FLOAT, name="x" * 129)], "parameters[0].name"),
    ([CAT, FLOAT, with_(FLOAT, low=5, high=6)], "parameters[2].name"),
    ([with_(FLOAT, type="complex")], "parameters[0].type"),
    ([with_(FLOAT, values=[1, 2])], "parameters[0].values"),
    ([with_(CAT, low=0)], "parameters[0].low"),
    ([with_(FLOAT, low=...)], "parameters[0].low"),
    ([CAT, with_(FLOAT, high=...)], "parameters[1].high"),
    ([with_(FLOAT, low="0")], "parameters[0].low"),
    ([with_(FLOAT, low=True)], "parameters[0].low"),
    ([with_(FLOAT, high=math.inf)], "parameters[0].high"),
    ([with_(FLOAT, high=math.nan)], "parameters[0].high"),
    ([with_(FLOAT, high=10**400)], "parameters[0].high"),
    ([CAT, with_(FLOAT, low=1.0, high=1.0)], "parameters[1].high"),
    ([with_(FLOAT, low=2.0)], "parameters[0].high"),
    ([with_(FLOAT, type="int", low=0.5, high=3)], "parameters[0].low"),
    ([with_(FLOAT, type="int", low=0, high=3.5)], "parameters[0].high"),
    ([with_(FLOAT, type="int", low=0, high=9, step=1.5)], "parameters[0].step"),
    ([with_(FLOAT, scale="log")], "parameters[0].low"),
    ([with_(FLOAT, scale="cubic")], "parameters[0].scale"),
    ([with_(FLOAT, step=0)], "parameters[0].step"),
    ([with_(FLOAT, step=-0.1)], "parameters[0].step"),
    ([with_(FLOAT, step=1.5)], "parameters[0].step"),
    ([with_(FLOAT, low=0.1, scale="log", step=0.1)], "parameters[0].step"),
    ([with_(FLOAT, type="int", low=1, high=9, scale="log", step=2)], "parameters[0].step"),
    ([with_(FLOAT, high=1e6, step=1e-7)], "parameters[0].step"),
    ([with_(FLOAT, grid_points=0)], "parameters[0].grid_points"),
    ([with_(FLOAT, grid_points=10_001)], "parameters[0].grid_points"),
    ([with_(FLOAT, grid_points=2.5)], "parameters[0].grid_points"),
    ([with_(FLOAT, grid_points=True)], "parameters[0].grid_points"),
    ([with_(CAT, values=...)], "parameters[0].values"),
    ([with_(CAT, values=[])], "parameters[0].values"),
    ([with_(CAT, values="ab")], "parameters[0].values"),
    ([with_(CAT, values=list(range(10_001)))], "parameters[0].values"),
    ([with_(CAT, values=["a", ["b"]])], "parameters[0].values[1]"),
    ([with_(CAT, values=["a", math.nan])], "parameters[0].values[1]"),
    ([with_(CAT, values=["a", "b" * 1001])], "parameters[0].values[1]"),
    ([with_(CAT, values=["a", 1, "b", 1.0])], "parameters[0].values[3]"),
    ([with_(CAT, values=["a", "a"])], "parameters[0].values[1]"),
    ([with_(CAT, scale="linear")], "parameters[0].scale"),
    ([with_(CAT, type="discrete", values=[1, "2"])], "parameters[0].values[1]"),
    ([with_(CAT, type="discrete", values=[1, True])], "parameters[0].values[1]"),
    ([with_(CAT, type="discrete", values=[1, math.inf])], "parameters[0].values[1]"),
    ([with_(CAT, type="discrete", values=[10**400])], "parameters[0].values[0]"),
    ([with_(CAT, type="discrete", values=[0, 1], scale="log")], "parameters[0].values"),
    ([CAT, with_(FLOAT, condition="c")], "parameters[1].condition"),
    ([CAT, with_(FLOAT, condition={**cond("c", "a"), "when": 1})], "parameters[1].condition.when"),
    ([CAT, with_(FLOAT, condition={"values": ["a"]})], "parameters[1].condition.parent"),
    ([CAT, with_(FLOAT, condition=cond("c"))], "parameters[1].condition.values"),
    (
        [CAT, with_(FLOAT, condition={"parent": "c", "values": "a"})],
        "parameters[1].condition.values",
    ),
    ([CAT, with_(FLOAT, condition=cond("nope", "a"))], "parameters[1].condition.parent"),
    ([CAT, with_(FLOAT, condition=cond("x", 0.5))], "parameters[1].condition.parent"),
    (
        [with_(FLOAT, name="y"), with_(FLOAT, condition=cond("y", 0.5))],
        "parameters[1].condition.parent",
    ),
    ([CAT, with_(FLOAT, condition=cond("c", "a", "z"))], "parameters[1].condition.values[1]"),
    (
        [with_(CAT, type="discrete", values=[1, 2]), with_(FLOAT, condition=cond("c", "1"))],
        "parameters[1].condition.values[0]",
    ),
    (
        [with_(CAT, condition=cond("x", "a")), with_(CAT, name="x", condition=cond("c", "a"))],
        "parameters[0].condition.parent",
    ),
    (chain(17), "parameters[17].condition"),
]


@pytest.mark.parametrize(("specs", "field"), INVALID_SPECS)
def test_each_rule_names_the_offending_field(specs: Any, field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        SearchSpace.from_list(specs)
    assert info.value.field == field
    assert info.value.code == "invalid_spec"


def test_valid_specs_round_trip_through_to_list() -> None:
    specs = [
        with_(FLOAT, low=1e-5, high=0.1, scale="log", grid_points=4),
        {"name": "n", "type": "int", "low": 0, "high": 12, "step": 3},
        {"name": "b", "type": "discrete", "values": [64, 16, 32.5], "scale": "log"},
        {**CAT, "values": ["a", True, 1, 2.5], "condition": None},
        {"name": "m", "type": "float", "low": 0, "high": 1, "condition": cond("c", True, 1)},
        *chain(16)[1:],
        chain(16)[0],
    ]
    space = SearchSpace.from_list(specs)
    assert space["b"].values == (16, 32.5, 64)  # discrete values are sorted
    assert SearchSpace.from_list(space.to_list()) == space


# ---- encoding ------------------------------------------------------------------------------
KINDS: list[dict[str, Any]] = [
    {"type": "float", "low": -3.0, "high": 7.5},
    {"type": "float", "low": 1e-6, "high": 10.0, "scale": "log"},
    {"type": "float", "low": -1.0, "high": 1.0, "step": 0.1},
    {"type": "float", "low": 0.0, "high": 1.0, "step": 0.3},
    {"type": "int", "low": -5, "high": 5},
    {"type": "int", "low": 0, "high": 100, "step": 7},
    {"type": "int", "low": 1, "high": 4096, "scale": "log"},
    {"type": "discrete", "values": [0.5, 1, 2, 8]},
    {"type": "discrete", "values": [1, 10, 1000], "scale": "log"},
    {"type": "categorical", "values": ["adam", "sgd", True, 3]},
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: "-".join(str(v) for v in k.values())[:40])
def test_encode_decode_round_trip(kind: dict[str, Any]) -> None:
    space = SearchSpace.from_list([{"name": "p", **kind}])
    p = space["p"]
    rng = np.random.default_rng(0)
    for u in [0.0, 1.0, 1 - 1e-12, *rng.random(2000)]:
        params = space.decode([u])
        assert space.validate_params(params) == params
        x = space.encode(params)
        assert 0.0 <= x[0] <= 1.0
        again = space.decode(x)
        if p.n_choices is None:
            assert again["p"] == pytest.approx(params["p"], rel=1e-9, abs=1e-12)
        else:
            assert again == params
    if p.n_choices is not None:  # every admissible value owns a cell of the cube
        values = p.grid_values()
        assert len(values) == p.n_choices
        assert [space.decode(space.encode({"p": v}))["p"] for v in values] == values


def test_sampling_is_log_uniform_on_a_log_scale() -> None:
    space = SearchSpace.from_list(
        [{"name": "lr", "type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}]
    )
    rng = np.random.default_rng(1)
    logs = np.log10([space.sample(rng)["lr"] for _ in range(20_000)])
    assert stats.kstest((logs + 4) / 4, "uniform").pvalue > 1e-3
    per_decade = np.histogram(logs, bins=[-4, -3, -2, -1, 0])[0] / len(logs)
    assert per_decade == pytest.approx([0.25] * 4, abs=0.02)  # linear would put 90% in the last


def test_log_int_sampling_favours_small_values() -> None:
    space = SearchSpace.from_list(
        [{"name": "n", "type": "int", "low": 1, "high": 1000, "scale": "log"}]
    )
    rng = np.random.default_rng(2)
    draws = np.array([space.sample(rng)["n"] for _ in range(20_000)])
    expected = math.log(10.5 / 0.5) / math.log(1000.5 / 0.5)  # mass of 1..10
    assert np.mean(draws <= 10) == pytest.approx(expected, abs=0.02)
    assert draws.min() == 1 and draws.max() == 1000


def test_linear_sampling_is_uniform() -> None:
    space = SearchSpace.from_list([with_(FLOAT, low=-2.0, high=6.0)])
    rng = np.random.default_rng(3)
    xs = np.array([space.sample(rng)["x"] for _ in range(20_000)])
    assert stats.kstest((xs + 2) / 8, "uniform").pvalue > 1e-3


def test_step_snapping() -> None:
    space = SearchSpace.from_list(
        [with_(FLOAT, step=0.1), {"name": "k", "type": "int", "low": 0, "high": 10, "step": 3}]
    )
    assert space["x"].grid_values() == [round(0.1 * i, 10) for i in range(11)]
    assert space["k"].grid_values() == [0, 3, 6, 9]
    rng = np.random.default_rng(4)
    seen = [space.sample(rng) for _ in range(5000)]
    assert {s["x"] for s in seen} == set(space["x"].grid_values())  # exact, e.g. 0.3 not 0.300..04
    counts = np.bincount([s["k"] // 3 for s in seen])
    assert counts == pytest.approx([1250] * 4, rel=0.12)
    for bad, field in [({"x": 0.15, "k": 3}, "params.x"), ({"x": 0.1, "k": 10}, "params.k")]:
        with pytest.raises(InvalidSpec) as info:
            space.validate_params(bad)
        assert info.value.field == field


def test_tiny_steps_keep_distinct_values_inside_the_bounds() -> None:
    space = SearchSpace.from_list([with_(FLOAT, low=1e-13, high=1e-12, step=1e-13)])
    values = space["x"].grid_values()
    assert len(set(values)) == 10
    assert all(space.validate_params({"x": v}) == {"x": v} for v in values)
    assert min(values) >= 1e-13


# ---- conditions ----------------------------------------------------------------------------
NESTED: list[dict[str, Any]] = [
    {"name": "model", "type": "categorical", "values": ["svm", "tree", "knn"]},
    {
        "name": "kernel",
        "type": "categorical",
        "values": ["rbf", "poly"],
        "condition": cond("model", "svm"),
    },
    {"name": "degree", "type": "int", "low": 2, "high": 5, "condition": cond("kernel", "poly")},
    {
        "name": "coef",
        "type": "float",
        "low": 0,
        "high": 1,
        "grid_points": 3,
        "condition": cond("degree", 3, 5),
    },
    {"name": "depth", "type": "int", "low": 1, "high": 3, "condition": cond("model", "tree")},
    {"name": "k", "type": "discrete", "values": [1, 5], "condition": cond("model", "knn", "tree")},
    {"name": "seed", "type": "int", "low": 0, "high": 2},
]


def test_conditional_activity_is_nested() -> None:
    space = SearchSpace.from_list(NESTED)
    active = lambda name, params: space.is_active(space[name], params)  # noqa: E731
    assert active("kernel", {"model": "svm"}) and not active("kernel", {"model": "tree"})
    assert not active("degree", {"model": "tree", "kernel": "poly"})  # parent inactive
    assert active("degree", {"model": "svm", "kernel": "poly"})
    assert active("coef", {"model": "svm", "kernel": "poly", "degree": 3.0})
    assert not active("coef", {"model": "svm", "kernel": "poly", "degree": 4})
    assert not active("k", {}) and active("seed", {})
    rng = np.random.default_rng(5)
    samples = [space.sample(rng) for _ in range(3000)]
    assert all(space.validate_params(s) == s for s in samples)
    patterns = {tuple(s) for s in samples}
    assert ("model", "kernel", "degree", "coef", "seed") in patterns
    assert ("model", "kernel", "seed") in patterns and ("model", "depth", "k", "seed") in patterns
    assert all(
        math.isnan(v) == (n not in s)
        for s in samples[:50]
        for n, v in zip(space.names, space.encode(s), strict=True)
    )


VALIDATE_ERRORS: list[tuple[Any, str]] = [
    ("svm", "params"),
    ({"model": "knn", "k": 5, "seed": 0, "color": "red"}, "params.color"),
    ({"model": "knn", "k": 5, "seed": 0, "depth": 2}, "params.depth"),
    ({"model": "svm", "kernel": "rbf", "degree": 3, "seed": 0}, "params.degree"),
    ({"model": "knn", "seed": 0}, "params.k"),
    ({"model": "svm", "kernel": "poly", "seed": 1}, "params.degree"),
    ({"model": "svm", "kernel": "poly", "degree": 3, "seed": 1}, "params.coef"),
    ({"model": "tree", "depth": 4, "k": 1, "seed": 0}, "params.depth"),
    ({"model": "tree", "depth": 2.5, "k": 1, "seed": 0}, "params.depth"),
    ({"model": "tree", "depth": True, "k": 1, "seed": 0}, "params.depth"),
    ({"model": "tree", "depth": "2", "k": 1, "seed": 0}, "params.depth"),
    ({"model": "tree", "depth": 2, "k": 2, "seed": 0}, "params.k"),
    ({"model": "lasso", "seed": 0}, "params.model"),
    ({"model": "svm", "kernel": "poly", "degree": 3, "coef": math.nan, "seed": 0}, "params.coef"),
    ({"model": "svm", "kernel": "poly", "degree": 3, "coef": 1.5, "seed": 0}, "params.coef"),
    ({"model": "knn", "k": 1, "seed": 10**400}, "params.seed"),
]


@pytest.mark.parametrize(("params", "field"), VALIDATE_ERRORS)
def test_validate_params_errors(params: Any, field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        SearchSpace.from_list(NESTED).validate_params(params)
    assert info.value.field == field


def test_validate_params_returns_canonical_values_in_space_order() -> None:
    space = SearchSpace.from_list(NESTED)
    out = space.validate_params({"seed": 2.0, "k": 5.0, "depth": 1, "model": "tree"})
    assert out == {"model": "tree", "depth": 1, "k": 5, "seed": 2}
    assert list(out) == ["model", "depth", "k", "seed"]
    assert type(out["seed"]) is int and type(out["k"]) is int
    assert space.validate_params(out) == out


def test_key_identifies_equal_points_only() -> None:
    space = SearchSpace.from_list(
        [
            FLOAT,
            {**CAT, "values": [True, 1, 10**17, 10**17 + 1]},
            {"name": "n", "type": "int", "low": 0, "high": 10},
        ]
    )
    key = space.key
    assert key({"x": 1, "c": 1, "n": 3}) == key({"x": 1.0, "c": 1.0, "n": 3.0})
    assert key({"x": 0.0, "c": 1, "n": 3}) == key({"x": -0.0, "c": 1, "n": 3})
    assert key({"x": 0.5, "c": True, "n": 3}) != key({"x": 0.5, "c": 1, "n": 3})
    assert key({"x": 0.5, "c": 10**17, "n": 3}) != key({"x": 0.5, "c": 10**17 + 1, "n": 3})
    assert key({"x": 0.5, "c": 1, "n": 3}) != key({"x": 0.5, "c": 1, "n": 4})


# ---- grids ---------------------------------------------------------------------------------
def reference_grid(space: SearchSpace, default_points: int | None) -> set[tuple[Any, ...]]:
    """Every combination of grid values, inactive parameters dropped: brute force."""
    names = space.names
    value_lists = [space[n].grid_values(default_points) for n in names]
    points = set()
    for combo in itertools.product(*value_lists):
        full = dict(zip(names, combo, strict=True))
        params: dict[str, Any] = {}
        for p in space.parameters:  # parents come before children in these specs
            if space.is_active(p, params):
                params[p.name] = full[p.name]
        points.add(space.key(params))
    return points


GRID_SPACES = [
    NESTED,
    [with_(FLOAT, low=1e-3, high=1.0, scale="log"), CAT],
    [
        {"name": "n", "type": "int", "low": 1, "high": 50, "grid_points": 6, "scale": "log"},
        {"name": "d", "type": "discrete", "values": [1, 2, 3], "condition": cond("n", 1, 50, 7)},
        with_(FLOAT, step=0.25, condition=cond("d", 2, 3)),
    ],
]


@pytest.mark.parametrize("specs", GRID_SPACES)
@pytest.mark.parametrize("default_points", [1, 3])
def test_grid_enumeration_respects_conditions(specs: Any, default_points: int) -> None:
    space = SearchSpace.from_list(specs)
    size = space.grid_size(default_points)
    points = list(space.iter_grid(default_points))
    keys = [space.key(p) for p in points]
    assert len(points) == size and len(set(keys)) == size
    assert all(space.validate_params(p) == p for p in points)
    assert set(keys) == reference_grid(space, default_points)


def test_grid_values() -> None:
    lin = SearchSpace.from_list([with_(FLOAT, grid_points=5)])["x"]
    assert lin.grid_values() == [0.0, 0.25, 0.5, 0.75, 1.0]
    log = SearchSpace.from_list([with_(FLOAT, low=1e-3, high=0.1, scale="log")])["x"]
    assert log.grid_values(3) == pytest.approx([1e-3, 1e-2, 1e-1])
    assert log.grid_values(1) == [1e-3]
    ints = SearchSpace.from_list(
        [{"name": "n", "type": "int", "low": 0, "high": 100, "grid_points": 5}]
    )["n"]
    assert ints.grid_values() == [0, 25, 50, 75, 100]
    with pytest.raises(InvalidSpec):
        SearchSpace.from_list([FLOAT]).grid_size()


def test_huge_integer_ranges_are_not_materialized() -> None:
    space = SearchSpace.from_list(
        [
            {"name": "seed", "type": "int", "low": 0, "high": 10**9},
            {"name": "c", "type": "int", "low": 0, "high": 10**3, "condition": cond("seed", 5)},
        ]
    )
    assert space.grid_size() == 10**9 + 1 + 1000
    assert space.grid_point(4) == {"seed": 4}
    assert space.grid_point(5 + 1000) == {"seed": 5, "c": 1000}
    assert space.grid_point(10**9 + 1000) == {"seed": 10**9}
