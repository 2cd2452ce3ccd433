"""The wider benchmark's scikit-learn tuning tasks (issue 21), kind ``sklearn-wide``.

Kept cheap: small bundled datasets (wine, breast_cancer, digits), 3-fold
shuffled ``StratifiedKFold(random_state=0)``, ``n_jobs=1``, fixed model seeds;
the value is 1 - mean accuracy. Several spaces are plateau-heavy on purpose:
fractional tree-growth parameters, small integer ranges, categorical switches.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .problems import Params, Problem, dataset

FOLDS = 3
BUDGET = 30


def cv3(model: Any, data: str) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X, y = wide_dataset(data)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        scores = cross_val_score(model, X, y, cv=folds, scoring="accuracy", n_jobs=1)
    return 1.0 - float(np.mean(scores))


def wide_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "wine":
        from sklearn.datasets import load_wine

        X, y = load_wine(return_X_y=True)
        return np.asarray(X, float), np.asarray(y)
    return dataset(name)


def scaled(model: Any) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), model)


def dtree(p: Params) -> float:
    from sklearn.tree import DecisionTreeClassifier

    model = DecisionTreeClassifier(
        min_samples_split=float(p["min_samples_split"]),
        min_samples_leaf=float(p["min_samples_leaf"]),
        min_weight_fraction_leaf=float(p["min_weight_fraction_leaf"]),
        max_features=float(p["max_features"]),
        min_impurity_decrease=float(p["min_impurity_decrease"]),
        random_state=0,
    )
    return cv3(model, "breast_cancer")


def adaboost(p: Params) -> float:
    from sklearn.ensemble import AdaBoostClassifier

    model = AdaBoostClassifier(
        n_estimators=int(p["n_estimators"]), learning_rate=float(p["learning_rate"]), random_state=0
    )
    return cv3(model, "wine")


def extra_trees(p: Params) -> float:
    from sklearn.ensemble import ExtraTreesClassifier

    mf = str(p["max_features"])
    model = ExtraTreesClassifier(
        n_estimators=int(p["n_estimators"]),
        max_depth=int(p["max_depth"]),
        min_samples_split=int(p["min_samples_split"]),
        max_features=None if mf == "all" else mf,
        criterion=str(p["criterion"]),
        bootstrap=p["bootstrap"] == "yes",
        random_state=0,
        n_jobs=1,
    )
    return cv3(model, "breast_cancer")


def hist_gb(p: Params) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        learning_rate=float(p["learning_rate"]),
        max_iter=int(p["max_iter"]),
        max_leaf_nodes=int(p["max_leaf_nodes"]),
        min_samples_leaf=int(p["min_samples_leaf"]),
        l2_regularization=float(p["l2_regularization"]),
        random_state=0,
    )
    return cv3(model, "wine")


def logistic(p: Params) -> float:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        C=float(p["C"]),
        l1_ratio=1.0 if p["penalty"] == "l1" else 0.0,
        solver="liblinear",
        fit_intercept=p["fit_intercept"] == "yes",
        class_weight=None if p["class_weight"] == "none" else "balanced",
        max_iter=200,
    )
    return cv3(scaled(model), "breast_cancer")


def sgd(p: Params) -> float:
    from sklearn.linear_model import SGDClassifier

    model = SGDClassifier(
        loss=str(p["loss"]),
        penalty=str(p["penalty"]),
        alpha=float(p["alpha"]),
        l1_ratio=float(p["l1_ratio"]),
        max_iter=30,
        tol=None,
        random_state=0,
    )
    return cv3(scaled(model), "digits")


def mlp(p: Params) -> float:
    from sklearn.neural_network import MLPClassifier

    width, depth = int(p["width"]), int(p["depth"])
    model = MLPClassifier(
        hidden_layer_sizes=(width,) * depth,
        activation=str(p["activation"]),
        alpha=float(p["alpha"]),
        learning_rate_init=float(p["learning_rate_init"]),
        max_iter=80,
        random_state=0,
    )
    return cv3(scaled(model), "wine")


def knn(p: Params) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    model = KNeighborsClassifier(
        n_neighbors=int(p["n_neighbors"]), weights=str(p["weights"]), p=int(p["p"])
    )
    return cv3(scaled(model), "breast_cancer")


def gb_fractional(p: Params) -> float:
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(
        n_estimators=int(p["n_estimators"]),
        learning_rate=float(p["learning_rate"]),
        max_depth=int(p["max_depth"]),
        subsample=float(p["subsample"]),
        min_samples_leaf=float(p["min_samples_leaf"]),
        max_features=float(p["max_features"]),
        random_state=0,
    )
    return cv3(model, "wine")


def flt(name: str, low: float, high: float, log: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "type": "float", "low": low, "high": high}
    return {**out, "scale": "log"} if log else out


def integer(name: str, low: int, high: int, log: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "type": "int",
        "low": low,
        "high": high,
        "scale": "log" if log else "linear",
    }


def cat(name: str, *values: str) -> dict[str, Any]:
    return {"name": name, "type": "categorical", "values": list(values)}


def wide_sklearn_problems() -> list[Problem]:
    kind, B = "sklearn-wide", BUDGET
    spaces: list[tuple[str, Any, tuple[dict[str, Any], ...]]] = [
        (
            "dtree-fractional-bc",
            dtree,
            (
                flt("min_samples_split", 0.01, 0.5),
                flt("min_samples_leaf", 0.005, 0.25),
                flt("min_weight_fraction_leaf", 0.0, 0.4),
                flt("max_features", 0.1, 1.0),
                flt("min_impurity_decrease", 0.0, 0.1),
            ),
        ),
        (
            "adaboost-wine",
            adaboost,
            (integer("n_estimators", 5, 100), flt("learning_rate", 1e-3, 2.0, True)),
        ),
        (
            "extratrees-bc",
            extra_trees,
            (
                integer("n_estimators", 5, 60),
                integer("max_depth", 1, 15),
                integer("min_samples_split", 2, 20),
                cat("max_features", "sqrt", "log2", "all"),
                cat("criterion", "gini", "entropy"),
                cat("bootstrap", "yes", "no"),
            ),
        ),
        (
            "histgb-wine",
            hist_gb,
            (
                flt("learning_rate", 1e-3, 1.0, True),
                integer("max_iter", 10, 100),
                integer("max_leaf_nodes", 2, 64, True),
                integer("min_samples_leaf", 1, 40),
                flt("l2_regularization", 1e-6, 10.0, True),
            ),
        ),
        (
            "logreg-bc",
            logistic,
            (
                flt("C", 1e-4, 1e3, True),
                cat("penalty", "l1", "l2"),
                cat("fit_intercept", "yes", "no"),
                cat("class_weight", "none", "balanced"),
            ),
        ),
        (
            "sgd-digits",
            sgd,
            (
                cat("loss", "hinge", "log_loss", "modified_huber", "perceptron"),
                cat("penalty", "l2", "l1", "elasticnet"),
                flt("alpha", 1e-7, 1e-1, True),
                flt("l1_ratio", 0.0, 1.0),
            ),
        ),
        (
            "mlp-wine",
            mlp,
            (
                integer("width", 4, 128, True),
                integer("depth", 1, 3),
                cat("activation", "relu", "tanh", "logistic"),
                flt("alpha", 1e-6, 1.0, True),
                flt("learning_rate_init", 1e-4, 1e-1, True),
            ),
        ),
        (
            "knn-bc",
            knn,
            (
                integer("n_neighbors", 1, 60),
                cat("weights", "uniform", "distance"),
                integer("p", 1, 3),
            ),
        ),
        (
            "gb-fractional-wine",
            gb_fractional,
            (
                integer("n_estimators", 5, 60),
                flt("learning_rate", 1e-3, 1.0, True),
                integer("max_depth", 1, 6),
                flt("subsample", 0.3, 1.0),
                flt("min_samples_leaf", 0.01, 0.3),
                flt("max_features", 0.1, 1.0),
            ),
        ),
    ]
    return [Problem(name, kind, space, fn, B) for name, fn, space in spaces]
