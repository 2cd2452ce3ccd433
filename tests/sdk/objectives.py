"""Objectives the optimize tests ship to worker processes.

Kept in a module of their own that imports nothing heavy: workers import it
(cloudpickle pickles module-level functions by reference).
"""

from __future__ import annotations

import json
import os
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


def rung_training(trial: tuneforge.Trial, log: str) -> float:
    """Trains a stand-in model epoch by epoch (``trial.steps()``), resuming a promoted trial
    from its checkpoint; appends one JSON line per epoch it actually trains to ``log``.

    The loss falls with the epochs and is lower the closer x is to 1, so a rung ranks
    trials by x. A promoted trial must find the state it was paused with.
    """
    x = trial.params["x"]
    state = trial.load_checkpoint()
    if trial.resume_from_step is None:
        assert state is None, f"trial {trial.number} is fresh but has a checkpoint"
        state = {"x": x, "epoch": 0, "loss": None}
    else:
        assert state is not None, f"promoted trial {trial.number} has no checkpoint"
        assert state["epoch"] == trial.resume_from_step and state["x"] == x, state
    loss = state["loss"]
    for epoch in trial.steps():
        time.sleep(0.01)  # the training
        loss = (x - 1.0) ** 2 + 4.0 / epoch
        state = {"x": x, "epoch": epoch, "loss": loss}
        line = {"trial": trial.number, "epoch": epoch, "x": x, "pid": os.getpid()}
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps({**line, "t": time.time()}) + "\n")
        if trial.report(epoch, loss=loss):
            trial.save_checkpoint(state)
            raise tuneforge.TrialPruned()
    return float(loss)
