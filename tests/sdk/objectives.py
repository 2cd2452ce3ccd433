"""Objectives the optimize tests ship to worker processes.

Kept in a module of their own that imports nothing heavy: workers import it
(cloudpickle pickles module-level functions by reference).
"""

from __future__ import annotations

import time

import tuneforge


def quadratic(trial: tuneforge.Trial) -> float:
    return float((trial.params["x"] - 1.0) ** 2)


def slow_quadratic(trial: tuneforge.Trial) -> float:
    time.sleep(0.15)
    return quadratic(trial)


def reporting(trial: tuneforge.Trial) -> float:
    """Reports a learning curve; the better x is, the lower the loss at every step."""
    loss = quadratic(trial)
    for step in range(3):
        if trial.report(step, loss=loss + 3 - step):
            raise tuneforge.TrialPruned()
    return loss


def fails_on_positive(trial: tuneforge.Trial) -> float:
    if trial.params["x"] > 0:
        raise ValueError(f"x={trial.params['x']:.3f} is positive")
    return quadratic(trial)


def two_metrics(trial: tuneforge.Trial) -> dict[str, float]:
    return {"loss": quadratic(trial), "size": abs(trial.params["x"])}
