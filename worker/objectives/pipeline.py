"""What the managed objective needs to fit pipelines on tables: the trial's pipeline,
row selection that works on arrays and DataFrames alike, and several scorers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ...core.pipelines import build_pipeline
from ...core.policy import ObjectivePolicy
from ...core.scoring import scorers_for


def build_managed_pipeline(
    objective: Mapping[str, Any], params: Mapping[str, Any], policy: ObjectivePolicy
) -> Any:
    """The scikit-learn Pipeline of ``objective.pipeline`` with one trial's ``step__param``
    values (every class and option checked against ``policy`` first)."""
    return build_pipeline(objective["pipeline"], params, policy)


def rows(X: Any, index: np.ndarray) -> Any:
    """Rows ``index`` of a numeric array or of a DataFrame (whose columns pipelines select)."""
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


Score = Callable[[Any, Any, np.ndarray], dict[str, float]]


def scorers(estimator: Any, scoring: Any, metric: str, *, only_objective: bool = False) -> Score:
    """A function ``(model, X, y) -> {metric: score}`` for every metric ``scoring`` fills
    (``metric`` is the study's objective metric; ``only_objective``: that one alone).
    Predictions are computed once for all of them (scikit-learn's multimetric scorer)."""
    from sklearn.metrics import check_scoring

    wanted = scorers_for(scoring, metric)
    if only_objective:
        wanted = {metric: wanted[metric]}
    default = [name for name, scorer in wanted.items() if scorer is None]
    named = {name: scorer for name, scorer in wanted.items() if scorer is not None}
    several = check_scoring(estimator, scoring=named) if named else None
    plain = check_scoring(estimator) if default else None

    def score(model: Any, X: Any, y: np.ndarray) -> dict[str, float]:
        out = {name: float(v) for name, v in several(model, X, y).items()} if several else {}
        for name in default:
            assert plain is not None
            out[name] = float(plain(model, X, y))
        return out

    return score
