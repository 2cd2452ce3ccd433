"""The one trial runner: evaluates a managed objective on a trial handle.

Celery tasks and local process pools (``tuneforge run``, ``tuneforge quickstart``)
both call :func:`evaluate`. It reports through ``trial.report`` and returns the
values to complete the trial with; the caller completes, prunes or fails it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from ..core.errors import InvalidSpec
from .objectives.sklearn_cv import Problem, cross_validate, prepare


class TrialLike(Protocol):
    """What the runner needs of a trial handle (the SDK's Trial has it)."""

    @property
    def params(self) -> Mapping[str, Any]: ...

    def report(self, step: int, values: Mapping[str, float] | None = None, /) -> bool: ...


class ConfigurationError(Exception):
    """The objective cannot evaluate this configuration (record the trial as infeasible)."""


@dataclass(frozen=True)
class Outcome:
    values: dict[str, float]
    stopped: bool


class _Reporter:
    def __init__(self, trial: TrialLike) -> None:
        self._trial = trial
        self.stopped = False

    def report(
        self, step: int, values: Mapping[str, float] | None = None, /, **metrics: float
    ) -> bool:
        self.stopped = self._trial.report(step, {**(values or {}), **metrics}) or self.stopped
        return self.stopped


def evaluate(trial: TrialLike, objective: Mapping[str, Any], metric: str) -> Outcome:
    """Run ``objective`` for ``trial``; raise :class:`ConfigurationError` for a bad configuration
    or for data that does not fit the objective (missing file or column, unusable types)."""
    reporter = _Reporter(trial)
    params = dict(trial.params)
    if objective["kind"] == "sklearn":
        try:
            problem = problem_for(objective)
        except InvalidSpec as exc:  # the data does not fit the spec: the same for every trial
            raise ConfigurationError(str(exc)) from exc
        try:
            out = cross_validate(objective, params, metric, reporter, problem)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ConfigurationError(f"{type(exc).__name__}: {exc}") from exc
        return Outcome({metric: out.score}, out.stopped)
    function = load_callable(objective["callable"])
    result = function(params, reporter, **objective.get("options", {}))
    values = dict(result) if isinstance(result, Mapping) else {metric: float(result)}
    return Outcome(values, reporter.stopped)


def problem_for(objective: Mapping[str, Any]) -> Problem:
    """The prepared dataset and folds of an objective, kept once per process."""
    import json

    return _problem(json.dumps(dict(objective), sort_keys=True))


@lru_cache(maxsize=8)
def _problem(key: str) -> Problem:
    import json

    return prepare(json.loads(key))


def load_callable(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class LocalObjective:
    """A managed objective as a plain ``objective(trial)`` for ``study.optimize``.

    Used by ``tuneforge run`` and ``tuneforge quickstart`` to run managed studies in
    local processes through the same :func:`evaluate` the Celery task uses. A bad
    configuration marks the trial infeasible; a stopped trial is completed with
    its running mean, which the server records as pruned.
    """

    def __init__(self, objective: Mapping[str, Any], metric: str, blas_threads: int = 1) -> None:
        self.objective = dict(objective)
        self.metric = metric
        self.blas_threads = blas_threads

    def __call__(self, trial: Any) -> dict[str, float] | None:
        from threadpoolctl import threadpool_limits

        try:
            with threadpool_limits(limits=self.blas_threads):
                return evaluate(trial, self.objective, self.metric).values
        except ConfigurationError as exc:
            trial.infeasible(str(exc))
            return None
