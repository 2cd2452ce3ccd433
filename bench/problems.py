"""Benchmark problems: synthetic test functions, designed mixed problems, sklearn tasks.

Every problem is minimized. A :class:`Problem` carries its search space in the
tuneforge wire format (the ``parameters`` of ``POST /studies``), the matching
Optuna distributions, its budget, and the known optimum where there is one
(synthetic and mixed problems), so results can be reported as regret.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Params = Mapping[str, Any]

SYNTHETIC_BUDGET = 60
LARGE_SYNTHETIC_BUDGET = 80
SKLEARN_BUDGET = 30
CV_FOLDS = 5
CV_SEED = 0


@dataclass(frozen=True)
class Problem:
    name: str
    kind: str  # "synthetic" | "mixed" | "sklearn"
    parameters: tuple[dict[str, Any], ...]
    objective: Callable[[Params], float]
    budget: int
    optimum: float | None = None  # the known global minimum, when there is one

    def evaluate(self, params: Params) -> float:
        return float(self.objective(params))

    def optuna_distributions(self) -> dict[str, Any]:
        import optuna.distributions as d

        out: dict[str, Any] = {}
        for p in self.parameters:
            log = p.get("scale") == "log"
            if p["type"] == "float":
                out[p["name"]] = d.FloatDistribution(p["low"], p["high"], log=log)
            elif p["type"] == "int":
                out[p["name"]] = d.IntDistribution(int(p["low"]), int(p["high"]), log=log)
            elif p["type"] == "categorical":
                out[p["name"]] = d.CategoricalDistribution(tuple(p["values"]))
            else:  # pragma: no cover - the problems below use only these three
                raise ValueError(f"unsupported parameter type {p['type']}")
        return out


def floats(prefix: str, dim: int, low: float, high: float) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"name": f"{prefix}{i}", "type": "float", "low": low, "high": high} for i in range(dim)
    )


def vector(params: Params, dim: int, prefix: str = "x") -> np.ndarray:
    return np.array([float(params[f"{prefix}{i}"]) for i in range(dim)])


# ---- standard synthetic functions ---------------------------------------------------------
def branin(p: Params) -> float:
    x1, x2 = float(p["x0"]), float(p["x1"])
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
HARTMANN_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
HARTMANN_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


HARTMANN_MIN = -3.322368011415514  # polished with L-BFGS-B from the published minimizer


def hartmann6(p: Params) -> float:
    x = vector(p, 6)
    inner = np.sum(HARTMANN_A * (x - HARTMANN_P) ** 2, axis=1)
    return float(-np.sum(HARTMANN_ALPHA * np.exp(-inner)))


def ackley(p: Params, dim: int = 5) -> float:
    x = vector(p, dim)
    a = -20 * math.exp(-0.2 * math.sqrt(float(np.mean(x**2))))
    return a - math.exp(float(np.mean(np.cos(2 * math.pi * x)))) + 20 + math.e


def rosenbrock(p: Params, dim: int = 4) -> float:
    x = vector(p, dim)
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def levy(p: Params, dim: int = 10) -> float:
    w = 1 + (vector(p, dim) - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    mid = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return float(head + mid + tail)


def styblinski_tang(p: Params, dim: int = 8) -> float:
    x = vector(p, dim)
    return float(0.5 * np.sum(x**4 - 16 * x**2 + 5 * x))


STYBLINSKI_TANG_MIN_1D = -39.16616570377142


# ---- designed mixed problems ----------------------------------------------------------------
# mixed-rotated: 3 floats, 2 ints, 1 categorical (auto takes the GP path). Each category
# rotates an ill-conditioned valley in (x0, x1), shifts every optimum coordinate and adds
# an offset; the best category is "b" with value 0.
ROT_CATS = ("a", "b", "c", "d")
ROT_ANGLE = {"a": 0.0, "b": math.pi / 3, "c": 2 * math.pi / 3, "d": -math.pi / 4}
ROT_SHIFT = {
    "a": (1.5, -1.0, 0.5),
    "b": (-1.2, 0.8, -2.0),
    "c": (0.3, 2.1, 1.7),
    "d": (-2.2, -1.9, 0.0),
}
ROT_INT = {"a": (2, -3), "b": (-4, 1), "c": (0, 4), "d": (3, 3)}
ROT_OFFSET = {"a": 0.6, "b": 0.0, "c": 0.9, "d": 0.3}


def mixed_rotated(p: Params) -> float:
    c = str(p["mode"])
    s, (m0, m1), th = ROT_SHIFT[c], ROT_INT[c], ROT_ANGLE[c]
    d0, d1 = float(p["x0"]) - s[0], float(p["x1"]) - s[1]
    z0 = math.cos(th) * d0 + math.sin(th) * d1
    z1 = -math.sin(th) * d0 + math.cos(th) * d1
    d2 = float(p["x2"]) - s[2]
    bumps = 0.4 * (1 - math.cos(2 * math.pi * d2))  # a ripple along x2: local minima
    ints = 0.3 * ((int(p["n0"]) - m0) ** 2 + (int(p["n1"]) - m1) ** 2)
    return z0**2 + 10 * z1**2 + d2**2 + bumps + ints + ROT_OFFSET[c]


# mixed-nn: a simulated training loss over (lr log, weight decay log, layers int,
# units int log, optimizer categorical); the optimal learning rate depends on the
# optimizer and the depth, the optimal width on the depth; too large a learning rate
# "diverges". Optimum 0.05: adam, 3 layers, 128 units, lr 10^-3.2, weight decay 1e-4.
NN_OPT = {"sgd": (-1.0, 0.15, 0.08), "adam": (-3.0, 0.10, 0.05), "rmsprop": (-3.5, 0.10, 0.065)}


def mixed_nn(p: Params) -> float:
    lr_star, lr_depth, base = NN_OPT[str(p["optimizer"])]
    layers = int(p["layers"])
    d_lr = math.log10(float(p["lr"])) - (lr_star - lr_depth * (layers - 1))
    d_wd = math.log10(float(p["weight_decay"])) + 4.0
    d_u = math.log2(int(p["units"])) - (8.0 - 0.5 * (layers - 1))
    quad = 0.04 * d_lr**2 + 0.02 * d_lr * d_u + 0.006 * d_u**2 + 0.01 * d_wd**2
    diverge = 0.3 * max(0.0, d_lr - 1.0) ** 2
    return base + quad + diverge + 0.01 * (layers - 3) ** 2


# mixed-cat: three 4-level categoricals, an int and a float (mostly categorical).
# Seeded tables give per-level costs, a
# pairwise interaction, and the optimal int and float per level.
_CAT = ("p", "q", "r", "s")
_rng = np.random.default_rng(20240601)
CAT_T1, CAT_T2, CAT_T3 = (_rng.uniform(0, 1, 4) for _ in range(3))
CAT_M12 = _rng.uniform(0, 0.8, (4, 4))
CAT_K = _rng.integers(0, 21, 4)  # optimal k per level of c3
CAT_X = _rng.uniform(0.1, 0.9, 4)  # optimal x per level of c1


def mixed_cat(p: Params) -> float:
    i, j, k = (_CAT.index(str(p[n])) for n in ("c1", "c2", "c3"))
    cost = CAT_T1[i] + CAT_T2[j] + CAT_T3[k] + CAT_M12[i, j]
    cost += 0.04 * abs(int(p["k"]) - int(CAT_K[k])) + 4.0 * (float(p["x"]) - CAT_X[i]) ** 2
    return float(cost)


def mixed_cat_optimum() -> float:
    costs = CAT_T1[:, None] + CAT_T2[None, :] + CAT_M12
    return float(costs.min() + CAT_T3.min())


def synthetic_problems() -> list[Problem]:
    B, L = SYNTHETIC_BUDGET, LARGE_SYNTHETIC_BUDGET
    branin_space = (
        {"name": "x0", "type": "float", "low": -5.0, "high": 10.0},
        {"name": "x1", "type": "float", "low": 0.0, "high": 15.0},
    )
    rot_space = (
        *floats("x", 3, -3.0, 3.0),
        {"name": "n0", "type": "int", "low": -5, "high": 5},
        {"name": "n1", "type": "int", "low": -5, "high": 5},
        {"name": "mode", "type": "categorical", "values": list(ROT_CATS)},
    )
    nn_space = (
        {"name": "lr", "type": "float", "low": 1e-5, "high": 1.0, "scale": "log"},
        {"name": "weight_decay", "type": "float", "low": 1e-6, "high": 1e-1, "scale": "log"},
        {"name": "layers", "type": "int", "low": 1, "high": 6},
        {"name": "units", "type": "int", "low": 8, "high": 512, "scale": "log"},
        {"name": "optimizer", "type": "categorical", "values": list(NN_OPT)},
    )
    cat_space: tuple[dict[str, Any], ...] = (
        *({"name": n, "type": "categorical", "values": list(_CAT)} for n in ("c1", "c2", "c3")),
        {"name": "k", "type": "int", "low": 0, "high": 20},
        {"name": "x", "type": "float", "low": 0.0, "high": 1.0},
    )
    return [
        Problem("branin-2", "synthetic", branin_space, branin, B, 0.39788735772973816),
        Problem("hartmann-6", "synthetic", floats("x", 6, 0.0, 1.0), hartmann6, B, HARTMANN_MIN),
        Problem("ackley-5", "synthetic", floats("x", 5, -32.768, 32.768), ackley, B, 0.0),
        Problem("rosenbrock-4", "synthetic", floats("x", 4, -5.0, 10.0), rosenbrock, B, 0.0),
        Problem("levy-10", "synthetic", floats("x", 10, -10.0, 10.0), levy, L, 0.0),
        Problem(
            "styblinski-tang-8",
            "synthetic",
            floats("x", 8, -5.0, 5.0),
            styblinski_tang,
            L,
            8 * STYBLINSKI_TANG_MIN_1D,
        ),
        Problem("mixed-rotated", "mixed", rot_space, mixed_rotated, B, 0.0),
        Problem("mixed-nn", "mixed", nn_space, mixed_nn, B, 0.05),
        Problem("mixed-cat", "mixed", cat_space, mixed_cat, B, mixed_cat_optimum()),
    ]


# ---- scikit-learn tuning tasks: 1 - mean 5-fold CV accuracy ---------------------------------
_DATA: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name not in _DATA:
        from sklearn import datasets

        loader = {"digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer}
        X, y = loader[name](return_X_y=True)
        _DATA[name] = (np.asarray(X, dtype=float), np.asarray(y))
    return _DATA[name]


def cv_error(model: Any, data: str) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X, y = dataset(data)
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=CV_SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(model, X, y, cv=folds, scoring="accuracy", n_jobs=1)
    return 1.0 - float(np.mean(scores))


def svc_digits(p: Params) -> float:
    from sklearn.svm import SVC

    return cv_error(SVC(C=float(p["C"]), gamma=float(p["gamma"])), "digits")


def mlp_digits(p: Params) -> float:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = MLPClassifier(
        hidden_layer_sizes=(int(p["hidden"]),),
        alpha=float(p["alpha"]),
        learning_rate_init=float(p["learning_rate_init"]),
        max_iter=60,
        random_state=0,
    )
    return cv_error(make_pipeline(StandardScaler(), mlp), "digits")


def rf_breast_cancer(p: Params) -> float:
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(
        n_estimators=int(p["n_estimators"]),
        max_depth=int(p["max_depth"]),
        max_features=float(p["max_features"]),
        min_samples_leaf=int(p["min_samples_leaf"]),
        random_state=0,
        n_jobs=1,
    )
    return cv_error(model, "breast_cancer")


def gb_breast_cancer(p: Params) -> float:
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(
        n_estimators=int(p["n_estimators"]),
        learning_rate=float(p["learning_rate"]),
        max_depth=int(p["max_depth"]),
        subsample=float(p["subsample"]),
        random_state=0,
    )
    return cv_error(model, "breast_cancer")


def sklearn_problems() -> list[Problem]:
    B = SKLEARN_BUDGET

    def log(name: str, low: float, high: float) -> dict[str, Any]:
        return {"name": name, "type": "float", "low": low, "high": high, "scale": "log"}

    def integer(name: str, low: int, high: int, scale: str = "linear") -> dict[str, Any]:
        return {"name": name, "type": "int", "low": low, "high": high, "scale": scale}

    return [
        Problem(
            "svc-digits", "sklearn", (log("C", 1e-2, 1e3), log("gamma", 1e-5, 1.0)), svc_digits, B
        ),
        Problem(
            "mlp-digits",
            "sklearn",
            (
                integer("hidden", 16, 256, "log"),
                log("alpha", 1e-6, 1e-1),
                log("learning_rate_init", 1e-4, 1e-1),
            ),
            mlp_digits,
            B,
        ),
        Problem(
            "rf-breast_cancer",
            "sklearn",
            (
                integer("n_estimators", 10, 150),
                integer("max_depth", 1, 20),
                {"name": "max_features", "type": "float", "low": 0.05, "high": 1.0},
                integer("min_samples_leaf", 1, 20),
            ),
            rf_breast_cancer,
            B,
        ),
        Problem(
            "gb-breast_cancer",
            "sklearn",
            (
                integer("n_estimators", 10, 100),
                log("learning_rate", 1e-3, 1.0),
                integer("max_depth", 1, 8),
                {"name": "subsample", "type": "float", "low": 0.5, "high": 1.0},
            ),
            gb_breast_cancer,
            B,
        ),
    ]


def all_problems() -> dict[str, Problem]:
    return {p.name: p for p in [*synthetic_problems(), *sklearn_problems()]}
