"""The wider benchmark's synthetic problems (issue 21), grouped by kind.

- ``smooth``: BBOB's ill-conditioned and rotated unimodal functions (Hansen et
  al., *Real-Parameter Black-Box Optimization Benchmarking 2009: Noiseless
  Functions Definitions*, INRIA RR-6829): separable ellipsoid f2, rotated
  ellipsoid f10, discus f11, bent cigar f12, sharp ridge f13 and different
  powers f14, at d = 2, 5, 10 on ``[-5, 5]^d``.
- ``multimodal``: separable Rastrigin f3 and rotated Rastrigin f15, d = 2, 5, 10.
- ``plateau``: step ellipsoid f7 (d = 2, 5, 10) and objectives made of steps:
  a quantized rotated ellipsoid and a "staircase" sphere whose value is
  constant on cells.
- ``integer``: mostly integer spaces (rotated ellipsoid and Rastrigin on an
  integer grid, bent cigar with 6 ints and 2 floats, a log-int "layer sizes" task).
- ``categorical``: mostly categorical spaces (an NK landscape over 8 three-level
  categories, seeded cost tables with pairwise interactions, a categorical choice
  of a rotated ellipsoid's shift, a one-hot "pipeline" task).

Every instance (optimum location, rotations) is drawn from a generator seeded by
the function and the dimension, so problems are the same in every run. ``f_opt``
is 0 throughout: the reported value is the regret.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .problems import Params, Problem, floats, vector

BUDGETS = {2: 40, 5: 60, 10: 80}
DIMS = (2, 5, 10)


# ---- BBOB transformations (RR-6829, section 0) ----------------------------------------------
def t_osz(x: np.ndarray) -> np.ndarray:
    xhat = np.where(x != 0, np.log(np.abs(x) + (x == 0)), 0.0)
    c1 = np.where(x > 0, 10.0, 5.5)
    c2 = np.where(x > 0, 7.9, 3.1)
    return np.sign(x) * np.exp(xhat + 0.049 * (np.sin(c1 * xhat) + np.sin(c2 * xhat)))


def t_asy(x: np.ndarray, beta: float) -> np.ndarray:
    d = len(x)
    i = np.arange(d) / max(d - 1, 1)
    pos = np.maximum(x, 0.0)
    return np.where(x > 0, pos ** (1 + beta * i * np.sqrt(pos)), x)


def lam(alpha: float, d: int) -> np.ndarray:
    return alpha ** (0.5 * np.arange(d) / max(d - 1, 1))


def rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


class Instance:
    """One seeded BBOB instance: the optimum and two rotations."""

    def __init__(self, fid: int, d: int) -> None:
        rng = np.random.default_rng([21, fid, d])
        self.d = d
        self.xopt = rng.uniform(-4, 4, d)
        self.R = rotation(rng, d)
        self.Q = rotation(rng, d)
        self.cond = 10 ** (6 * np.arange(d) / max(d - 1, 1))

    def x(self, p: Params) -> np.ndarray:
        return vector(p, self.d) - self.xopt


def f_ellipsoid_sep(ins: Instance, x: np.ndarray) -> float:
    return float(np.sum(ins.cond * t_osz(x) ** 2))


def f_ellipsoid_rot(ins: Instance, x: np.ndarray) -> float:
    return float(np.sum(ins.cond * t_osz(ins.R @ x) ** 2))


def f_discus(ins: Instance, x: np.ndarray) -> float:
    z = t_osz(ins.R @ x)
    return float(1e6 * z[0] ** 2 + np.sum(z[1:] ** 2))


def f_bent_cigar(ins: Instance, x: np.ndarray) -> float:
    z = ins.R @ t_asy(ins.R @ x, 0.5)
    return float(z[0] ** 2 + 1e6 * np.sum(z[1:] ** 2))


def f_sharp_ridge(ins: Instance, x: np.ndarray) -> float:
    z = ins.Q @ (lam(10, ins.d) * (ins.R @ x))
    return float(z[0] ** 2 + 100 * math.sqrt(float(np.sum(z[1:] ** 2))))


def f_different_powers(ins: Instance, x: np.ndarray) -> float:
    z = ins.R @ x
    powers = 2 + 4 * np.arange(ins.d) / max(ins.d - 1, 1)
    return float(math.sqrt(float(np.sum(np.abs(z) ** powers))))


def rastrigin(z: np.ndarray) -> float:
    return float(10 * (len(z) - np.sum(np.cos(2 * math.pi * z))) + np.sum(z**2))


def f_rastrigin_sep(ins: Instance, x: np.ndarray) -> float:
    return rastrigin(lam(10, ins.d) * t_asy(t_osz(x), 0.2))


def f_rastrigin_rot(ins: Instance, x: np.ndarray) -> float:
    z = ins.R @ (lam(10, ins.d) * (ins.Q @ t_asy(t_osz(ins.R @ x), 0.2)))
    return rastrigin(z)


def f_step_ellipsoid(ins: Instance, x: np.ndarray) -> float:
    zhat = lam(10, ins.d) * (ins.R @ x)
    zt = np.where(np.abs(zhat) > 0.5, np.floor(0.5 + zhat), np.floor(0.5 + 10 * zhat) / 10)
    z = ins.Q @ zt
    weights = 10 ** (2 * np.arange(ins.d) / max(ins.d - 1, 1))
    return float(0.1 * max(abs(zhat[0]) / 1e4, float(np.sum(weights * z**2))))


def f_quantized_ellipsoid(ins: Instance, x: np.ndarray) -> float:
    """A rotated ellipsoid (condition 1e3) whose value is rounded down to a 0.5-step grid on
    a log scale: wide plateaus of exactly equal values, narrower near the optimum."""
    z = ins.R @ x
    value = float(np.sum(10 ** (3 * np.arange(ins.d) / max(ins.d - 1, 1)) * z**2))
    return float(10 ** (math.floor(2 * math.log10(1 + value)) / 2) - 1)


def f_staircase(ins: Instance, x: np.ndarray) -> float:
    """Constant on cells of side 0.5 (a stepped sphere): most neighbours tie."""
    return float(np.sum(np.floor(np.abs(x) / 0.5) ** 2))


FunctionDef = Callable[[Instance, np.ndarray], float]
SMOOTH: dict[str, tuple[int, FunctionDef]] = {
    "ellipsoid": (2, f_ellipsoid_sep),
    "ellipsoid-rot": (10, f_ellipsoid_rot),
    "discus": (11, f_discus),
    "bent-cigar": (12, f_bent_cigar),
    "sharp-ridge": (13, f_sharp_ridge),
    "different-powers": (14, f_different_powers),
}
MULTIMODAL: dict[str, tuple[int, FunctionDef]] = {
    "rastrigin": (3, f_rastrigin_sep),
    "rastrigin-rot": (15, f_rastrigin_rot),
}
PLATEAU: dict[str, tuple[int, FunctionDef]] = {
    "step-ellipsoid": (7, f_step_ellipsoid),
    "quantized-ellipsoid": (101, f_quantized_ellipsoid),
    "staircase": (102, f_staircase),
}


def bbob_problem(name: str, kind: str, fid: int, fn: FunctionDef, d: int) -> Problem:
    ins = Instance(fid, d)

    def objective(p: Params) -> float:
        return fn(ins, ins.x(p))

    return Problem(f"{name}-{d}", kind, floats("x", d, -5.0, 5.0), objective, BUDGETS[d], 0.0)


# ---- integer-heavy spaces -------------------------------------------------------------------
def ints(prefix: str, d: int, low: int, high: int, scale: str = "linear") -> tuple[dict, ...]:
    return tuple(
        {"name": f"{prefix}{i}", "type": "int", "low": low, "high": high, "scale": scale}
        for i in range(d)
    )


def integer_problems() -> list[Problem]:
    ell = Instance(201, 5)
    ell.xopt = np.round(ell.xopt * 2) / 2  # the optimum lies on the grid

    def int_ellipsoid(p: Params) -> float:
        x = np.array([int(p[f"k{i}"]) / 2 for i in range(5)]) - ell.xopt
        return float(np.sum(10 ** (4 * np.arange(5) / 4) * (ell.R @ x) ** 2))

    ras = Instance(202, 6)
    ras.xopt = np.round(ras.xopt * 2) / 2

    def int_rastrigin(p: Params) -> float:
        x = np.array([int(p[f"k{i}"]) / 2 for i in range(6)]) - ras.xopt
        return rastrigin(lam(10, 6) * (ras.R @ x) / 2)

    cig = Instance(203, 8)
    cig.xopt[:6] = np.round(cig.xopt[:6])

    def int_bent_cigar(p: Params) -> float:
        x = np.array([*(int(p[f"k{i}"]) for i in range(6)), float(p["x0"]), float(p["x1"])])
        z = cig.R @ (x - cig.xopt)
        return float(z[0] ** 2 + 1e3 * np.sum(z[1:] ** 2))

    widths = np.array([96, 384, 24, 192])

    def int_layers(p: Params) -> float:
        """A simulated validation loss over four layer widths (log ints 4..1024) and a
        depth 1..8: too narrow under-fits, too wide over-fits, best widths interact."""
        w = np.log2([int(p[f"w{i}"]) for i in range(4)])
        d = np.log2(widths)
        diff = w - d
        depth = int(p["depth"])
        loss = 0.05 * np.sum(diff**2) + 0.03 * diff[0] * diff[1] + 0.02 * (depth - 5) ** 2
        return float(loss + 0.01 * abs(depth - 5) * abs(diff[2]))

    return [
        Problem("int-ellipsoid-5", "integer", ints("k", 5, -10, 10), int_ellipsoid, 60, 0.0),
        Problem("int-rastrigin-6", "integer", ints("k", 6, -10, 10), int_rastrigin, 60, 0.0),
        Problem(
            "int-bent-cigar-8",
            "integer",
            (*ints("k", 6, -5, 5), *floats("x", 2, -5.0, 5.0)),
            int_bent_cigar,
            60,
            0.0,
        ),
        Problem(
            "int-layers-5",
            "integer",
            (*ints("w", 4, 4, 1024, "log"), {"name": "depth", "type": "int", "low": 1, "high": 8}),
            int_layers,
            60,
            0.0,
        ),
    ]


# ---- categorical-heavy spaces ---------------------------------------------------------------
LEVELS3 = ("a", "b", "c")
LEVELS4 = ("p", "q", "r", "s")


def cats(prefix: str, n: int, levels: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"name": f"{prefix}{i}", "type": "categorical", "values": list(levels)} for i in range(n)
    )


def nk_landscape(n: int = 8, k: int = 2, q: int = 3) -> tuple[Callable[[Params], float], float]:
    """Kauffman's NK landscape over ``n`` ``q``-level categories, each term depending on
    itself and its ``k`` cyclic neighbours; minimized (1 - mean fitness). The optimum is
    found by exhaustive enumeration (3^8 = 6561 points)."""
    rng = np.random.default_rng([21, 301])
    tables = rng.random((n, *([q] * (k + 1))))

    def value(idx: tuple[int, ...]) -> float:
        terms = [tables[i][tuple(idx[(i + j) % n] for j in range(k + 1))] for i in range(n)]
        return 1.0 - float(np.mean(terms))

    grids = np.array(np.meshgrid(*[range(q)] * n, indexing="ij")).reshape(n, -1).T
    best = min(value(tuple(int(v) for v in row)) for row in grids)

    def objective(p: Params) -> float:
        return value(tuple(LEVELS3.index(str(p[f"c{i}"])) for i in range(n)))

    return objective, best


def categorical_problems() -> list[Problem]:
    nk, nk_best = nk_landscape()
    rng = np.random.default_rng([21, 302])
    unary = rng.uniform(0, 1, (6, 4))
    pair = rng.uniform(0, 0.6, (5, 4, 4))
    x_best = rng.uniform(0.1, 0.9, 4)

    def tables(p: Params) -> float:
        idx = [LEVELS4.index(str(p[f"c{i}"])) for i in range(6)]
        cost = sum(unary[i, j] for i, j in enumerate(idx))
        cost += sum(pair[i, idx[i], idx[i + 1]] for i in range(5))
        return float(cost + 2.0 * (float(p["x"]) - x_best[idx[0]]) ** 2)

    # the optimum of the chain by dynamic programming over the six categories
    best = unary[0].copy()
    for i in range(1, 6):
        best = np.min(best[:, None] + pair[i - 1], axis=0) + unary[i]
    tables_opt = float(best.min())

    ins = Instance(303, 3)
    shifts = {
        c: np.random.default_rng([21, 303, k]).uniform(-3, 3, 3) for k, c in enumerate(LEVELS4)
    }
    offsets = {"p": 0.5, "q": 0.0, "r": 0.2, "s": 0.8}

    def cat_ellipsoid(p: Params) -> float:
        c1, c2 = str(p["c0"]), str(p["c1"])
        x = vector(p, 3) - shifts[c1]
        z = ins.R @ x
        return float(np.sum(10 ** (2 * np.arange(3) / 2) * z**2) + offsets[c1] + offsets[c2])

    steps = ("none", "scale", "power", "quantile")
    models = ("linear", "tree", "knn", "svm")
    costs = np.random.default_rng([21, 304]).uniform(0.1, 0.5, (4, 4))
    flags = np.random.default_rng([21, 305]).uniform(-0.05, 0.05, (4, 2))

    def pipeline(p: Params) -> float:
        i, j = steps.index(str(p["preprocess"])), models.index(str(p["model"]))
        cost = costs[i, j] + sum(flags[k, int(p[f"f{k}"] == "on")] for k in range(4))
        return float(cost + 0.05 * (math.log10(float(p["reg"])) + 2 - j / 2) ** 2)

    pipe_opt = float(costs.min() + flags.min(axis=1).sum())
    onoff = tuple(
        {"name": f"f{k}", "type": "categorical", "values": ["off", "on"]} for k in range(4)
    )
    pipe_space = (
        {"name": "preprocess", "type": "categorical", "values": list(steps)},
        {"name": "model", "type": "categorical", "values": list(models)},
        *onoff,
        {"name": "reg", "type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
    )
    return [
        Problem("cat-nk-8", "categorical", cats("c", 8, LEVELS3), nk, 60, nk_best),
        Problem(
            "cat-tables-7",
            "categorical",
            (*cats("c", 6, LEVELS4), {"name": "x", "type": "float", "low": 0.0, "high": 1.0}),
            tables,
            60,
            tables_opt,
        ),
        Problem(
            "cat-ellipsoid-5",
            "categorical",
            (*cats("c", 2, LEVELS4), *floats("x", 3, -5.0, 5.0)),
            cat_ellipsoid,
            60,
            0.0,
        ),
        Problem("cat-pipeline-7", "categorical", pipe_space, pipeline, 60, pipe_opt),
    ]


def wide_synthetic_problems() -> list[Problem]:
    out: list[Problem] = []
    for kind, table in (("smooth", SMOOTH), ("multimodal", MULTIMODAL), ("plateau", PLATEAU)):
        for name, (fid, fn) in table.items():
            out += [bbob_problem(name, kind, fid, fn, d) for d in DIMS]
    return out + integer_problems() + categorical_problems()
