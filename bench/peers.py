"""Peers beyond Optuna, each through its own ask/tell interface (the ``bench`` extra).

- ``smac``: SMAC3's hyperparameter-optimization facade
  (``HyperparameterOptimizationFacade``: random-forest surrogate, log EI,
  local + random search of the acquisition, its default Sobol initial design),
  ``deterministic=True`` and one evaluation per configuration (the problems are
  noise-free), ``seed=s``.
- ``ax``: Ax's ``Client(random_seed=s)`` with its default generation strategy
  (Sobol initialization, then BoTorch's modular model with log noisy expected
  improvement), one trial at a time.

A run returns the same :class:`.runners.RunResult` as every other optimizer.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

from .problems import Problem
from .runners import Memo, RunResult


def _loop(
    problem: Problem,
    name: str,
    seed: int,
    budget: int,
    ask: Callable[[], tuple[Any, Mapping[str, Any]]],
    tell: Callable[[Any, float], None],
) -> RunResult:
    memo = Memo(problem)
    values: list[float] = []
    latencies: list[float] = []
    t0 = time.perf_counter()
    for _ in range(budget):
        ts = time.perf_counter()
        handle, params = ask()
        latencies.append(time.perf_counter() - ts)
        value = memo(params)
        tell(handle, value)
        values.append(value)
    elapsed = time.perf_counter() - t0
    return RunResult(problem.name, name, seed, "seq", values, latencies, elapsed, len(memo.cache))


# ---- SMAC3 ----------------------------------------------------------------------------------
def smac_space(problem: Problem, seed: int) -> Any:
    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer

    cs = ConfigurationSpace(seed=seed)
    for p in problem.parameters:
        log = p.get("scale") == "log"
        if p["type"] == "float":
            cs.add(Float(p["name"], (float(p["low"]), float(p["high"])), log=log))
        elif p["type"] == "int":
            cs.add(Integer(p["name"], (int(p["low"]), int(p["high"])), log=log))
        else:
            cs.add(Categorical(p["name"], list(p["values"])))
    return cs


def run_smac(problem: Problem, seed: int, budget: int) -> RunResult:
    from smac import HyperparameterOptimizationFacade as HPO
    from smac import Scenario
    from smac.runhistory.dataclasses import TrialValue

    logging.getLogger("smac").setLevel(logging.ERROR)
    names = [p["name"] for p in problem.parameters]
    with tempfile.TemporaryDirectory(prefix="tuneforge-smac-") as tmp:
        scenario = Scenario(
            smac_space(problem, seed),
            deterministic=True,
            n_trials=budget,
            seed=seed,
            output_directory=os.path.join(tmp, "smac"),
        )
        intensifier = HPO.get_intensifier(scenario, max_config_calls=1)

        def target(config: Any, seed: int = 0) -> float:  # never called: ask/tell only
            raise RuntimeError("SMAC is driven through ask/tell")

        facade = HPO(scenario, target, intensifier=intensifier, overwrite=True, logging_level=40)

        def ask() -> tuple[Any, dict[str, Any]]:
            info = facade.ask()
            config = dict(info.config)
            return info, {n: config[n] for n in names}

        def tell(info: Any, value: float) -> None:
            facade.tell(info, TrialValue(cost=value))

        return _loop(problem, "smac", seed, budget, ask, tell)


# ---- Ax / BoTorch ---------------------------------------------------------------------------
def ax_parameters(problem: Problem) -> list[Any]:
    from ax import ChoiceParameterConfig, RangeParameterConfig

    out: list[Any] = []
    for p in problem.parameters:
        scaling = "log" if p.get("scale") == "log" else "linear"
        if p["type"] == "float":
            bounds = (float(p["low"]), float(p["high"]))
            out.append(RangeParameterConfig(p["name"], bounds, "float", scaling=scaling))
        elif p["type"] == "int":
            bounds = (int(p["low"]), int(p["high"]))
            out.append(RangeParameterConfig(p["name"], bounds, "int", scaling=scaling))
        else:
            out.append(ChoiceParameterConfig(p["name"], list(p["values"]), "str"))
    return out


def quiet_ax() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    prefixes = ("ax", "botorch", "gpytorch", "pyro")
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in prefixes:
            logging.getLogger(name).setLevel(logging.ERROR)


def run_ax(problem: Problem, seed: int, budget: int) -> RunResult:
    quiet_ax()
    from ax import Client

    quiet_ax()  # ax sets its loggers' levels on import
    client = Client(random_seed=seed)
    client.configure_experiment(parameters=ax_parameters(problem), name=problem.name)
    client.configure_optimization(objective="-loss")
    quiet_ax()  # loggers made while configuring

    def ask() -> tuple[int, Mapping[str, Any]]:
        trials = client.get_next_trials(max_trials=1)
        index, params = next(iter(trials.items()))
        return index, dict(params)

    def tell(index: int, value: float) -> None:
        client.complete_trial(index, raw_data={"loss": value})

    return _loop(problem, "ax", seed, budget, ask, tell)


def run_peer(problem: Problem, name: str, seed: int, budget: int) -> RunResult:
    if name == "smac":
        return run_smac(problem, seed, budget)
    if name == "ax":
        return run_ax(problem, seed, budget)
    raise ValueError(f"unknown peer {name!r}")
