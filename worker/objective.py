"""The one trial runner: evaluates a managed objective on a trial handle.

Celery tasks and local process pools (``tuneforge run``, ``tuneforge quickstart``)
both call :func:`evaluate`. It reports through ``trial.report`` and returns the
values to complete the trial with; the caller completes, prunes or fails it.
A sklearn objective of a study with a ``fidelity`` trains by rungs of it
(:mod:`.objectives.rungs`); otherwise it reports one measurement per fold.
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from ..core.errors import InvalidSpec
from ..core.fidelity import ManagedFidelity, managed_fidelity
from ..core.policy import ObjectivePolicy, estimator_class
from .objectives.fetch import DatasetCache, localized
from .objectives.record import reproducibility
from .objectives.rungs import RungTrial, WorkerId, train_by_rungs
from .objectives.sklearn_cv import CVOutcome, Problem, cross_validate, prepare
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


@dataclass(frozen=True)
class StudyContext:
    """What the runner needs of the study besides its objective: the fidelity and the
    early-stopping rule (rung training), the tuned parameters' names, and who runs it."""

    fidelity: Mapping[str, Any] | None = None
    early_stopping: Mapping[str, Any] = field(default_factory=lambda: {"rule": "none"})
    parameter_names: tuple[str, ...] = ()
    worker: str = field(default_factory=socket.gethostname)

    @classmethod
    def of(cls, study: Any, worker: str | None = None) -> StudyContext:
        """The context of an SDK study handle (its ``data``), run by ``worker``."""
        data = study.data
        return cls(
            fidelity=data.fidelity,
            early_stopping=data.early_stopping or {"rule": "none"},
            parameter_names=_names(data.parameters),
            worker=worker or socket.gethostname(),
        )


def _names(parameters: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    return tuple(str(p["name"]) for p in parameters)


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
    study: StudyContext | None = None,
    datasets: DatasetCache | None = None,
) -> Outcome:
    """Run ``objective`` for ``trial`` if ``policy`` allows what it names; raise
    :class:`ConfigurationError` when it does not, for a bad configuration, or for data
    that does not fit the objective (missing file or column, unusable types). An
    uploaded dataset comes from ``datasets`` (downloaded once, kept by fingerprint).

    With a ``study`` whose fidelity a sklearn objective can train by, the trial is
    trained by rungs (and resumed from its checkpoint when it has one)."""
    reporter = _Reporter(trial)
    params = dict(trial.params)
    study = study or StudyContext()
    try:
        policy.check_run(objective, params)  # before anything named is imported or read
        if objective["kind"] == "sklearn":
            objective = localized(objective, datasets)
            problem = problem_for(objective, policy)
            plan = rung_plan(objective, study, policy)
    except InvalidSpec as exc:  # not allowed here, or the data does not fit the spec
        raise ConfigurationError(str(exc)) from exc
    if objective["kind"] == "sklearn":
        out = _sklearn(trial, reporter, objective, metric, policy, problem, plan, study)
        folds = dict(out.metric_folds) or {metric: out.fold_scores}
        values = {name: float(sum(v) / len(v)) for name, v in folds.items() if v}
        record = reproducibility(objective, params, folds, out.seconds)
        return Outcome({**values, metric: out.score}, out.stopped, record, out.seconds)
    function = load_callable(objective["callable"], policy)
    result = function(params, reporter, **objective.get("options", {}))
    values = dict(result) if isinstance(result, Mapping) else {metric: float(result)}
    return Outcome(values, reporter.stopped)


def rung_plan(
    objective: Mapping[str, Any], study: StudyContext, policy: ObjectivePolicy
) -> ManagedFidelity | None:
    """How a sklearn objective trains by the study's fidelity (``None``: fold by fold),
    checked again here with the estimator class this worker's ``policy`` allows."""
    if study.fidelity is None:
        return None
    estimator = estimator_class(policy, objective["estimator"])
    return managed_fidelity(
        objective, study.fidelity, study.early_stopping, study.parameter_names, estimator
    )


def _sklearn(
    trial: TrialLike,
    reporter: _Reporter,
    objective: Mapping[str, Any],
    metric: str,
    policy: ObjectivePolicy,
    problem: Problem,
    plan: ManagedFidelity | None,
    study: StudyContext,
) -> CVOutcome:
    params = dict(trial.params)
    try:
        if plan is None:
            return cross_validate(objective, params, metric, reporter, problem, policy)
        if isinstance(trial, RungTrial):
            worker = WorkerId(study.worker)
            return train_by_rungs(trial, objective, metric, problem, policy, plan, worker)
    except InvalidSpec as exc:
        raise ConfigurationError(str(exc)) from exc
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise ConfigurationError(estimator_error(exc)) from exc
    raise TypeError("rung training needs a trial handle with checkpoints (the SDK's Trial)")


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
    its running mean, which the server records as pruned (or paused). ``policy``
    defaults to :func:`~.settings.local_policy` (the user's own code and working
    directory); ``study`` (:meth:`StudyContext.of`) brings the fidelity for rung training.
    """

    def __init__(
        self,
        objective: Mapping[str, Any],
        metric: str,
        blas_threads: int = 1,
        policy: ObjectivePolicy | None = None,
        study: StudyContext | None = None,
    ) -> None:
        self.objective = dict(objective)
        self.metric = metric
        self.blas_threads = blas_threads
        self.policy = policy or local_policy()
        self.study = study

    def __call__(self, trial: Any) -> dict[str, float] | None:
        from threadpoolctl import threadpool_limits

        from .settings import WorkerSettings

        datasets = DatasetCache(WorkerSettings().dataset_cache_dir, trial.client.download_dataset)
        try:
            with threadpool_limits(limits=self.blas_threads):
                outcome = evaluate(
                    trial, self.objective, self.metric, self.policy, self.study, datasets
                )
        except ConfigurationError as exc:
            trial.infeasible(str(exc))
            return None
        trial.complete(outcome.values, metadata=outcome.metadata)  # with its record
        return outcome.values
