"""Read-only analysis of a study's trials: best trials, the Pareto front
(:mod:`.best`); parameter importance (:mod:`.importance`) and the hypervolume
(:mod:`.hypervolume`) are imported from their modules, so that reading a study spec
does not load SciPy's statistics (a second of start-up for every CLI command)."""

from __future__ import annotations

from .best import best_trials, dominates, is_better, is_feasible, pareto_front

__all__ = ["best_trials", "dominates", "is_better", "is_feasible", "pareto_front"]
