"""Suggest latency against the history size, on a 5-parameter continuous problem.

tuneforge ``auto``: the wall time of ``POST /studies/{id}/trials/suggest`` (through
the real app) on a study whose history was loaded with ``POST /studies/{id}/trials``
(``state: completed``). Optuna: the wall time of ``study.ask()`` on a study whose
history was loaded with ``add_trial``. Both get the same random history. Each
measured suggestion is completed before the next one, so repetition ``r`` sees
``n + r`` finished trials; the first call after the bulk load (cold: no saved
model state for tuneforge) is reported separately.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from .problems import Problem, ackley, floats
from .runners import optuna_sampler, quiet_optuna, tuneforge_api

LATENCY_PROBLEM = Problem("ackley-5", "synthetic", floats("x", 5, -32.768, 32.768), ackley, 0, 0.0)


def random_history(n: int, seed: int = 0) -> list[tuple[dict[str, float], float]]:
    rng = np.random.default_rng([seed, n])
    out = []
    for _ in range(n):
        params = {f"x{i}": float(v) for i, v in enumerate(rng.uniform(-32.768, 32.768, 5))}
        out.append((params, LATENCY_PROBLEM.evaluate(params)))
    return out


def summarize(times: list[float]) -> dict[str, float]:
    return {
        "first": times[0],
        "median": statistics.median(times),
        "median_warm": statistics.median(times[1:]) if len(times) > 1 else times[0],
        "max": max(times),
    }


def tuneforge_latency(n: int, reps: int, algorithm: str = "auto") -> dict[str, float]:
    history = random_history(n)
    times = []
    with tuneforge_api() as api:
        study = api.create_study(LATENCY_PROBLEM, algorithm, 0, None, name=f"latency-{n}")
        for params, value in history:
            api.add_completed(study, params, value)
        for r in range(reps):
            trials, dt = api.suggest(study, f"latency-{r}")
            times.append(dt)
            number, params = trials[0]
            api.complete(study, number, LATENCY_PROBLEM.evaluate(params))
    return summarize(times)


def optuna_latency(n: int, reps: int, sampler_name: str) -> dict[str, float]:
    import optuna

    quiet_optuna()
    distributions = LATENCY_PROBLEM.optuna_distributions()
    study = optuna.create_study(direction="minimize", sampler=optuna_sampler(sampler_name, 0))
    study.add_trials(
        [
            optuna.trial.create_trial(params=params, distributions=distributions, value=value)
            for params, value in random_history(n)
        ]
    )
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        trial = study.ask(distributions)
        times.append(time.perf_counter() - t0)
        study.tell(trial, LATENCY_PROBLEM.evaluate(trial.params))
    return summarize(times)


def measure(
    levels: tuple[int, ...],
    reps: int,
    log: Any = print,
    peers: tuple[str, ...] = ("optuna-gp", "optuna-tpe"),
) -> list[dict[str, Any]]:
    """Rows ``{"optimizer", "n", "first", "median", "median_warm", "max"}``, one per level
    and optimizer: tf-auto and each of ``peers``."""
    tuneforge_latency(20, 2)  # warm-up: imports, first app start, caches
    if peers:
        optuna_latency(20, 2, peers[0])
    rows = []
    for n in levels:
        for name in ("tf-auto", *peers):
            if name == "tf-auto":
                stats = tuneforge_latency(n, reps)
            else:
                stats = optuna_latency(n, reps, name)
            rows.append({"optimizer": name, "n": n, **stats})
            log(f"latency {name:>10} n={n:<5} median {stats['median'] * 1000:8.1f} ms")
    return rows
