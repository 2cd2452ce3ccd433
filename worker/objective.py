"""The one trial runner: evaluates a managed objective on a trial handle.

Celery tasks and local process pools (``tuneforge run``, ``tuneforge quickstart``)
both call :func:`evaluate`. It reports through ``trial.report`` and returns the
values to complete the trial with; the caller completes, prunes or fails it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from ..core.errors import InvalidSpec
from ..core.policy import ObjectivePolicy
from .objectives.fetch import DatasetCache, localized
from .objectives.record import reproducibility
from .objectives.sklearn_cv import Problem, cross_validate, prepare
from .settings import local_policy


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
    #: Merged into the trial's metadata (managed sklearn trials: the reproducibility record).
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Seconds spent fitting and scoring (0 for python objectives, which time themselves).
    train_seconds: float = 0.0


class _Reporter:
    def __init__(self, trial: TrialLike) -> None:
        self._trial = trial
        self.stopped = False

    def report(
        self, step: int, values: Mapping[str, float] | None = None, /, **metrics: float
    ) -> bool:
        self.stopped = self._trial.report(step, {**(values or {}), **metrics}) or self.stopped
        return self.stopped


def evaluate(
    trial: TrialLike,
    objective: Mapping[str, Any],
    metric: str,
    policy: ObjectivePolicy,
    datasets: DatasetCache | None = None,
) -> Outcome:
    """Run ``objective`` for ``trial`` if ``policy`` allows what it names; raise
    :class:`ConfigurationError` when it does not, for a bad configuration, or for data
    that does not fit the objective (missing file or column, unusable types). An
    uploaded dataset comes from ``datasets`` (downloaded once, kept by fingerprint)."""
    reporter = _Reporter(trial)
    params = dict(trial.params)
    try:
        policy.check_run(objective, params)  # before anything named is imported or read
        if objective["kind"] == "sklearn":
            objective = localized(objective, datasets)
            problem = problem_for(objective, policy)
    except InvalidSpec as exc:  # not allowed here, or the data does not fit the spec
        raise ConfigurationError(str(exc)) from exc
    if objective["kind"] == "sklearn":
        try:
            out = cross_validate(objective, params, metric, reporter, problem, policy)
        except InvalidSpec as exc:
            raise ConfigurationError(str(exc)) from exc
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ConfigurationError(estimator_error(exc)) from exc
        values = {name: float(sum(v) / len(v)) for name, v in out.metric_folds.items()}
        record = reproducibility(objective, params, out.metric_folds, out.seconds)
        return Outcome({**values, metric: out.score}, out.stopped, record, out.seconds)
    function = load_callable(objective["callable"], policy)
    result = function(params, reporter, **objective.get("options", {}))
    values = dict(result) if isinstance(result, Mapping) else {metric: float(result)}
    return Outcome(values, reporter.stopped)


#: The longest estimator error kept as a trial's reason.
MAX_REASON = 300


def estimator_error(exc: BaseException) -> str:
    """An estimator's complaint about a configuration, as a trial's reason: its first line,
    cut short (the data was checked before fitting, so it names options, not values)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:MAX_REASON]}"


def problem_for(objective: Mapping[str, Any], policy: ObjectivePolicy) -> Problem:
    """The prepared dataset and folds of an objective, kept once per process."""
    import json

    return _problem(json.dumps(dict(objective), sort_keys=True), policy)


@lru_cache(maxsize=8)
def _problem(key: str, policy: ObjectivePolicy) -> Problem:
    import json

    return prepare(json.loads(key), policy)


def load_callable(target: str, policy: ObjectivePolicy) -> Any:
    """The function ``module:function``, imported only when ``policy`` allows its module."""
    policy.check_callable(target)
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class LocalObjective:
    """A managed objective as a plain ``objective(trial)`` for ``study.optimize``.

    Used by ``tuneforge run`` and ``tuneforge quickstart`` to run managed studies in
    local processes through the same :func:`evaluate` the Celery task uses. A bad
    configuration marks the trial infeasible; a stopped trial is completed with
    its running mean, which the server records as pruned. ``policy`` defaults to
    :func:`~.settings.local_policy` (the user's own code and working directory).
    """

    def __init__(
        self,
        objective: Mapping[str, Any],
        metric: str,
        blas_threads: int = 1,
        policy: ObjectivePolicy | None = None,
    ) -> None:
        self.objective = dict(objective)
        self.metric = metric
        self.blas_threads = blas_threads
        self.policy = policy or local_policy()

    def __call__(self, trial: Any) -> dict[str, float] | None:
        from threadpoolctl import threadpool_limits

        from .settings import WorkerSettings

        datasets = DatasetCache(WorkerSettings().dataset_cache_dir, trial.client.download_dataset)
        try:
            with threadpool_limits(limits=self.blas_threads):
                outcome = evaluate(trial, self.objective, self.metric, self.policy, datasets)
        except ConfigurationError as exc:
            trial.infeasible(str(exc))
            return None
        trial.complete(outcome.values, metadata=outcome.metadata)  # with its record
        return outcome.values
