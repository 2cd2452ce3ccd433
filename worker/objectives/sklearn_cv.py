"""The managed scikit-learn objective: cross-validation with one measurement per fold.

The held-out test rows are removed before any fold is built, so no trial ever
sees them; :func:`holdout_score` refits the chosen configuration on the whole
tuning part and scores it on those rows once.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.pipeline import Pipeline, make_pipeline

from ...core.errors import InvalidSpec
from ...core.policy import ObjectivePolicy, estimator_class
from .datasets import Dataset, load_dataset
from .pipeline import build_managed_pipeline, rows, scorers
from .splits import Split, cv_splits, holdout_split, outer_fold_split

#: The operator's defaults: listed estimators, no data files, no URLs, no python modules.
STRICT = ObjectivePolicy()
SCALERS = {
    "standard_scaler": "sklearn.preprocessing.StandardScaler",
    "min_max_scaler": "sklearn.preprocessing.MinMaxScaler",
    "robust_scaler": "sklearn.preprocessing.RobustScaler",
}


class Reporter(Protocol):
    """Receives one measurement per fold; returns True when the server says stop."""

    def report(self, step: int, values: Mapping[str, float] | None = None, /) -> bool: ...


@dataclass(frozen=True)
class CVOutcome:
    score: float
    fold_scores: tuple[float, ...]
    stopped: bool
    seconds: float
    #: Per-fold scores of every metric the objective's scorers fill (the objective too).
    metric_folds: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def build_estimator(
    objective: Mapping[str, Any], params: Mapping[str, Any], policy: ObjectivePolicy = STRICT
) -> Any:
    """The estimator (inside a preprocessing pipeline, if any) for one trial; the class
    and every option are checked against ``policy`` before the class is imported."""
    if objective.get("pipeline"):
        return build_managed_pipeline(objective, params, policy)
    path = objective["estimator"]
    fixed = objective.get("fixed_params", {})
    policy.check_options(path, fixed, "objective.fixed_params")
    policy.check_options(path, params, "params")
    model = estimator_class(policy, path)(**{**fixed, **params})
    steps = [_import(SCALERS[s])() for s in objective.get("preprocessing", [])]
    return make_pipeline(*steps, model) if steps else model


def _final_model(estimator: Any) -> Any:
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


@dataclass(frozen=True)
class Problem:
    """A study's dataset with its tuning rows, folds and held-out rows fixed."""

    data: Dataset
    tune_rows: np.ndarray
    test_rows: np.ndarray
    folds: tuple[Split, ...]


def prepare(objective: Mapping[str, Any], policy: ObjectivePolicy = STRICT) -> Problem:
    """Load the data and fix the held-out split and the folds (deterministic)."""
    data = load_dataset(objective["dataset"], objective, policy)
    probe = build_estimator(objective, {}, policy)
    stratify = is_classifier(_final_model(probe))
    if objective.get("outer_fold"):
        tune, test = outer_fold_split(data, objective["outer_fold"], stratify=stratify)
    else:
        tune, test = holdout_split(
            data,
            objective.get("test_size"),
            objective.get("seed", 0),
            stratify=stratify,
            ordered=objective["cv"]["type"] == "time_series",
        )
    return Problem(data, tune, test, tuple(cv_splits(objective["cv"], data, tune)))


def cross_validate(
    objective: Mapping[str, Any],
    params: Mapping[str, Any],
    metric: str,
    reporter: Reporter,
    problem: Problem | None = None,
    policy: ObjectivePolicy = STRICT,
) -> CVOutcome:
    """Fit and score fold by fold; report the running mean after each fold; stop when told."""
    problem = problem or prepare(objective, policy)
    estimator = build_estimator(objective, params, policy)
    score = scorers(estimator, objective.get("scoring"), metric)
    X, y = problem.data.X, problem.data.y
    folds: dict[str, list[float]] = {}
    start = time.perf_counter()
    for step, (train, test) in enumerate(problem.folds, start=1):
        model = clone(estimator).fit(rows(X, train), y[train])
        for name, value in score(model, rows(X, test), y[test]).items():
            folds.setdefault(name, []).append(value)
        means = {name: float(np.mean(values)) for name, values in folds.items()}
        if reporter.report(step, means):
            return _outcome(folds, metric, True, time.perf_counter() - start)
    return _outcome(folds, metric, False, time.perf_counter() - start)


def _outcome(
    folds: Mapping[str, list[float]], metric: str, stopped: bool, seconds: float
) -> CVOutcome:
    scores = folds[metric]
    by_metric = {name: tuple(values) for name, values in folds.items()}
    return CVOutcome(float(np.mean(scores)), tuple(scores), stopped, seconds, by_metric)


def holdout_score(
    objective: Mapping[str, Any],
    params: Mapping[str, Any],
    problem: Problem | None = None,
    policy: ObjectivePolicy = STRICT,
    metric: str = "score",
) -> float:
    """Refit on the whole tuning part and score once on the held-out rows."""
    problem = problem or prepare(objective, policy)
    if len(problem.test_rows) == 0:
        raise InvalidSpec(
            "the study has no held-out test set (test_size)", field="objective.test_size"
        )
    estimator = build_estimator(objective, params, policy)
    score = scorers(estimator, objective.get("scoring"), metric, only_objective=True)
    X, y = problem.data.X, problem.data.y
    model = estimator.fit(rows(X, problem.tune_rows), y[problem.tune_rows])
    return score(model, rows(X, problem.test_rows), y[problem.test_rows])[metric]
