"""Multi-objective benchmark problems: ZDT1, ZDT2, DTLZ2 and an accuracy-versus-size task.

Every objective is minimized. Each problem carries its search space (the tuneforge
wire format; :meth:`Problem.optuna_distributions` gives Optuna's), a fixed
hypervolume reference point, and where it is known the largest hypervolume any
set of points can reach (the true front's), so results read as a gap to it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .problems import dataset, floats, vector

Params = Mapping[str, Any]
SYNTHETIC_DIM = 6
SYNTHETIC_BUDGET = 40
SKLEARN_BUDGET = 30


@dataclass(frozen=True)
class MOProblem:
    name: str
    kind: str  # "synthetic" | "sklearn"
    parameters: tuple[dict[str, Any], ...]
    objectives: tuple[str, ...]
    evaluate: Callable[[Params], tuple[float, ...]]
    reference: tuple[float, ...]
    budget: int
    #: The hypervolume of the true Pareto front for ``reference`` (None: unknown).
    best_hypervolume: float | None = None

    def optuna_distributions(self) -> dict[str, Any]:
        import optuna.distributions as d

        out: dict[str, Any] = {}
        for p in self.parameters:
            log = p.get("scale") == "log"
            if p["type"] == "float":
                out[p["name"]] = d.FloatDistribution(p["low"], p["high"], log=log)
            elif p["type"] == "int":
                out[p["name"]] = d.IntDistribution(int(p["low"]), int(p["high"]), log=log)
            else:  # pragma: no cover - the problems below use only these two
                raise ValueError(f"unsupported parameter type {p['type']}")
        return out


def zdt(p: Params, shape: Callable[[float], float]) -> tuple[float, float]:
    x = vector(p, SYNTHETIC_DIM)
    f1 = float(x[0])
    g = 1.0 + 9.0 * float(np.sum(x[1:])) / (len(x) - 1)
    return f1, g * shape(f1 / g)


def zdt1(p: Params) -> tuple[float, float]:
    return zdt(p, lambda r: 1.0 - math.sqrt(r))


def zdt2(p: Params) -> tuple[float, float]:
    return zdt(p, lambda r: 1.0 - r * r)


def dtlz2(p: Params) -> tuple[float, float, float]:
    x = vector(p, SYNTHETIC_DIM)
    g = float(np.sum((x[2:] - 0.5) ** 2))
    a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
    r = 1.0 + g
    return r * math.cos(a) * math.cos(b), r * math.cos(a) * math.sin(b), r * math.sin(a)


def front_hypervolume(front: np.ndarray, reference: tuple[float, ...]) -> float:
    import moocore

    return float(moocore.hypervolume(front, ref=np.array(reference)))


def _zdt_front(shape: Callable[[float], float]) -> np.ndarray:
    f1 = np.linspace(0.0, 1.0, 20_001)
    return np.column_stack([f1, [shape(v) for v in f1]])


def _dtlz2_front_hypervolume(reference: float) -> float:
    """Reference cube minus the unit sphere's positive octant: the front's exact volume."""
    return reference**3 - math.pi / 6


def rf_size_accuracy(p: Params) -> tuple[float, float]:
    """1 - mean 3-fold CV accuracy of a random forest on breast_cancer, and log10 of its
    mean number of tree nodes (the model's size)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_validate

    X, y = dataset("breast_cancer")
    model = RandomForestClassifier(
        n_estimators=int(p["n_estimators"]),
        max_depth=int(p["max_depth"]),
        max_features=float(p["max_features"]),
        min_samples_leaf=int(p["min_samples_leaf"]),
        random_state=0,
        n_jobs=1,
    )
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = cross_validate(model, X, y, cv=folds, scoring="accuracy", return_estimator=True)
    nodes = np.mean([sum(t.tree_.node_count for t in m.estimators_) for m in out["estimator"]])
    return 1.0 - float(np.mean(out["test_score"])), math.log10(float(nodes))


def mo_problems() -> dict[str, MOProblem]:
    unit = floats("x", SYNTHETIC_DIM, 0.0, 1.0)
    zdt_ref = (1.1, 1.1 * (1.0 + 9.0))  # f1 <= 1, f2 <= g <= 10 on the whole box
    rf_space = (
        {"name": "n_estimators", "type": "int", "low": 1, "high": 100, "scale": "log"},
        {"name": "max_depth", "type": "int", "low": 1, "high": 16},
        {"name": "max_features", "type": "float", "low": 0.05, "high": 1.0},
        {"name": "min_samples_leaf", "type": "int", "low": 1, "high": 30, "scale": "log"},
    )
    out = [
        MOProblem(
            "zdt1",
            "synthetic",
            unit,
            ("f1", "f2"),
            zdt1,
            zdt_ref,
            SYNTHETIC_BUDGET,
            front_hypervolume(_zdt_front(lambda r: 1.0 - math.sqrt(r)), zdt_ref),
        ),
        MOProblem(
            "zdt2",
            "synthetic",
            unit,
            ("f1", "f2"),
            zdt2,
            zdt_ref,
            SYNTHETIC_BUDGET,
            front_hypervolume(_zdt_front(lambda r: 1.0 - r * r), zdt_ref),
        ),
        MOProblem(
            "dtlz2",
            "synthetic",
            unit,
            ("f1", "f2", "f3"),
            dtlz2,
            (2.2, 2.2, 2.2),  # 1 + g <= 1 + 4 * 0.25 = 2 on the whole box
            SYNTHETIC_BUDGET,
            _dtlz2_front_hypervolume(2.2),
        ),
        MOProblem(
            "rf-size-accuracy",
            "sklearn",
            rf_space,
            ("error", "log10_nodes"),
            rf_size_accuracy,
            (0.2, 4.5),  # 20% error; 10^4.5 nodes is more than the largest forest here
            SKLEARN_BUDGET,
        ),
    ]
    return {p.name: p for p in out}
