"""Read-only analysis of a study's trials: best trials and the Pareto front."""

from __future__ import annotations

from .best import best_trials, dominates, is_better, is_feasible, pareto_front

__all__ = ["best_trials", "dominates", "is_better", "is_feasible", "pareto_front"]
