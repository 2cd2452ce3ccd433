"""Read-only analysis of a study's trials: best trials, the Pareto front, parameter importance."""

from __future__ import annotations

from .best import best_trials, dominates, is_better, is_feasible, pareto_front
from .importance import (
    MIN_TRIALS,
    ImportanceResult,
    Interaction,
    ParamImportance,
    parameter_importance,
    pick_metric,
    study_importance,
)

__all__ = [
    "MIN_TRIALS",
    "ImportanceResult",
    "Interaction",
    "ParamImportance",
    "best_trials",
    "dominates",
    "is_better",
    "is_feasible",
    "parameter_importance",
    "pareto_front",
    "pick_metric",
    "study_importance",
]
