"""Rung training of the managed scikit-learn objective, for a study with a ``fidelity``.

Each fold of the cross-validation keeps its own model, grown rung by rung in
the resource the fidelity names (:mod:`tuneforge.core.fidelity`): more trees by
``warm_start``, more epochs or rows by ``partial_fit``, more folds. At each of
the plan's steps the worker reports the mean score over the folds at that
resource (``step`` = the resource) and obeys ``should_stop``. Under a rule that
pauses trials it saves a checkpoint at every step, before the trial is
completed: the per-fold fitted models, the scores, and a record of who trained
which part. A promoted trial, on whichever worker picks it up, loads that
checkpoint and goes on from its resource; it is retrained from scratch only
when no usable checkpoint exists.

Under ``pbt`` the worker saves its checkpoint at every step *before* it reports
(so a member told to exploit it at that step gets the current models). When a
reply says exploit, the SDK has already set the trial's new params and points
``load_checkpoint()`` at the donor: the worker takes the donor's per-fold models,
sets the new params on each (an MLP's SGD/Adam optimizer is rebuilt from them at
the next ``partial_fit``), saves them as its own checkpoint and trains on: epochs
and rows from its own step (its compute goes on counting), a ``warm_start``
model from the larger of its step and the donor's size.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sklearn.base import is_classifier
from sklearn.metrics import check_scoring
from sklearn.pipeline import Pipeline

from ...core.errors import InvalidSpec
from ...core.fidelity import ManagedFidelity
from ...core.policy import ObjectivePolicy
from .sklearn_cv import CVOutcome, Problem, build_estimator

log = logging.getLogger("tuneforge.worker")

#: What a rung checkpoint's ``format`` says (a checkpoint in another format is not loaded).
CHECKPOINT_FORMAT = "tuneforge.rungs/1"


@runtime_checkable
class RungTrial(Protocol):
    """What rung training needs of a trial handle (the SDK's Trial has it)."""

    @property
    def params(self) -> Mapping[str, Any]: ...

    @property
    def resume_from_step(self) -> int | None: ...

    @property
    def should_stop(self) -> bool: ...

    def report(
        self,
        step: int,
        values: Mapping[str, float] | None = None,
        /,
        *,
        elapsed_seconds: float | None = None,
    ) -> bool: ...

    def save_checkpoint(self, state: Any, *, step: int | None = None) -> Any: ...

    def load_checkpoint(self, default: Any = None) -> Any: ...


@dataclass
class Progress:
    """How far one trial has trained: what its checkpoint holds.

    ``models`` has one fitted estimator per fold (for a ``folds`` fidelity, one per
    fold done); ``scores`` their scores at ``resource``; ``history`` the
    ``(step, mean score)`` reported; ``segments`` who trained from which resource to
    which (worker, process id, seconds, and for ``warm_start`` how many estimators or
    iterations each fold's model held before and after).
    """

    resource: int = 0
    models: list[Any] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    history: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    segments: list[dict[str, Any]] = field(default_factory=list)

    def mean(self) -> float:
        """The cross-validation score at ``resource``."""
        return float(np.mean(self.scores))

    def to_checkpoint(self, fidelity: ManagedFidelity) -> dict[str, Any]:
        """The checkpoint's content: plain data and the fitted models."""
        return {
            "format": CHECKPOINT_FORMAT,
            "fidelity": {"name": fidelity.name, "kind": fidelity.kind},
            "resource": self.resource,
            "models": list(self.models),
            "scores": list(self.scores),
            "history": [list(h) for h in self.history],
            "seconds": self.seconds,
            "segments": [dict(s) for s in self.segments],
        }

    @classmethod
    def from_checkpoint(cls, data: Any, fidelity: ManagedFidelity, n_folds: int) -> Progress | None:
        """The progress a checkpoint holds, or ``None`` when it is not a usable rung
        checkpoint of this fidelity (another format, resource or fold count)."""
        if not isinstance(data, Mapping) or data.get("format") != CHECKPOINT_FORMAT:
            return None
        if data.get("fidelity") != {"name": fidelity.name, "kind": fidelity.kind}:
            return None
        resource, models = data.get("resource"), data.get("models")
        if not isinstance(resource, int) or not isinstance(models, list):
            return None
        expected = resource if fidelity.kind == "folds" else n_folds
        if len(models) != expected or len(data.get("scores", ())) != expected:
            return None
        return cls(
            resource=resource,
            models=list(models),
            scores=[float(s) for s in data["scores"]],
            history=[(int(s), float(v)) for s, v in data.get("history", [])],
            seconds=float(data.get("seconds", 0.0)),
            segments=[dict(s) for s in data.get("segments", [])],
        )


class FoldTrainer:
    """Grows one trial's per-fold models from one resource to the next."""

    def __init__(
        self,
        objective: Mapping[str, Any],
        params: Mapping[str, Any],
        problem: Problem,
        policy: ObjectivePolicy,
        fidelity: ManagedFidelity,
    ) -> None:
        self._objective = objective
        self._params = dict(params)
        self._policy = policy
        self.fidelity = fidelity
        self._X, self._y = problem.data.X, problem.data.y
        self.folds = problem.folds
        probe = self.fresh()
        self._scorer = check_scoring(probe, scoring=objective.get("scoring"))
        classes = np.unique(self._y[problem.tune_rows])
        self._fit_args = {"classes": classes} if is_classifier(final_step(probe)) else {}
        self._orders = self._row_orders(int(objective.get("seed", 0)))

    def fresh(self) -> Any:
        """A new, unfitted estimator for this trial (``warm_start`` on when it grows by it)."""
        model = build_estimator(self._objective, self._params, self._policy)
        if self.fidelity.kind == "warm_start":
            final_step(model).set_params(warm_start=True)
        if self.fidelity.kind in ("epochs", "stream") and not hasattr(
            final_step(model), "partial_fit"
        ):
            raise InvalidSpec(
                f"{type(final_step(model)).__name__} with these parameters has no partial_fit "
                "(for example an MLP with solver 'lbfgs'), so it cannot be trained by rungs of "
                f"{self.fidelity.name!r}",
                field="fidelity.name",
            )
        return model

    def grow(self, progress: Progress, target: int) -> None:
        """Train every fold from ``progress.resource`` to ``target``; score them there."""
        if self.fidelity.kind == "folds":
            self._more_folds(progress, target)
        else:
            models = progress.models or [None] * len(self.folds)
            scores = progress.scores or [math.nan] * len(self.folds)
            for i, (train, test) in enumerate(self.folds):
                models[i] = self._grow_fold(models[i], i, train, progress.resource, target)
                scores[i] = float(self._scorer(models[i], self._X[test], self._y[test]))
            progress.models, progress.scores = models, scores
        progress.resource = target

    def _more_folds(self, progress: Progress, target: int) -> None:
        if target > len(self.folds):
            raise InvalidSpec(
                f"must be at most the {len(self.folds)} folds of objective.cv",
                field="fidelity.max",
            )
        for train, test in self.folds[progress.resource : target]:
            model = self.fresh().fit(self._X[train], self._y[train])
            progress.models.append(model)
            progress.scores.append(float(self._scorer(model, self._X[test], self._y[test])))

    def _grow_fold(self, model: Any, i: int, train: np.ndarray, start: int, target: int) -> Any:
        kind = self.fidelity.kind
        if kind == "warm_start":
            model = model if model is not None else self.fresh()
            final_step(model).set_params(**{self.fidelity.name: target})
            return model.fit(self._X[train], self._y[train])
        if kind == "subsample":
            rows = self._orders[i][: self._rows(i, target)]
            return self.fresh().fit(self._X[rows], self._y[rows])
        if model is None:
            model = self.fresh()
            preprocessing(model).fit(self._X[train], self._y[train])
        if kind == "epochs":
            self._partial_fit(model, train, passes=target - start)
        else:  # stream: the rows not seen yet, in the fold's fixed order
            rows = self._orders[i][self._rows(i, start) : self._rows(i, target)]
            self._partial_fit(model, rows, passes=1)
        return model

    def _partial_fit(self, model: Any, rows: np.ndarray, passes: int) -> None:
        X = preprocessing(model).transform(self._X[rows])
        for _ in range(passes):
            final_step(model).partial_fit(X, self._y[rows], **self._fit_args)

    def _row_orders(self, seed: int) -> list[np.ndarray]:
        """Each fold's training rows in a fixed shuffled order (row resources take a prefix)."""
        if self.fidelity.kind not in ("stream", "subsample"):
            return []
        orders = [
            np.random.default_rng([seed, i]).permutation(t) for i, (t, _) in enumerate(self.folds)
        ]
        smallest = min(len(o) for o in orders)
        if self.fidelity.name == "n_samples" and self.fidelity.high > smallest:
            raise InvalidSpec(
                f"n_samples {self.fidelity.high} is more than the {smallest} rows of the "
                "smallest training fold",
                field="fidelity.max",
            )
        return orders

    def _rows(self, i: int, resource: int) -> int:
        if self.fidelity.name == "n_samples":
            return resource
        return math.ceil(len(self._orders[i]) * resource / 100)


def final_step(model: Any) -> Any:
    """The estimator itself (the last step of a pipeline)."""
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def preprocessing(model: Any) -> Any:
    """A pipeline's steps before the estimator (sharing its step objects), or a no-op."""
    if isinstance(model, Pipeline) and len(model.steps) > 1:
        return Pipeline(model.steps[:-1])
    return _Identity()


class _Identity:
    def fit(self, X: Any, y: Any = None) -> _Identity:
        del X, y
        return self

    def transform(self, X: Any) -> Any:
        return X


def fitted_size(model: Any) -> int | None:
    """How many estimators (or boosting iterations) a fitted ensemble holds; ``None`` for
    other models."""
    final = final_step(model)
    if hasattr(final, "estimators_"):
        return len(final.estimators_)
    n_iter = getattr(final, "n_iter_", None)
    if isinstance(n_iter, int | np.integer) and hasattr(final, "_predictors"):
        return int(n_iter)  # boosting iterations (HistGradientBoosting)
    return None


@dataclass(frozen=True)
class WorkerId:
    """Who trains a segment of a trial: the worker's name and its process id."""

    name: str
    pid: int = field(default_factory=os.getpid)


def resume(trial: RungTrial, fidelity: ManagedFidelity, n_folds: int) -> Progress | None:
    """The trial's checkpoint as :class:`Progress`, when the rule may have paused it and
    a usable one exists (a promoted trial, or a task delivered again)."""
    if not fidelity.checkpoints:
        return None
    data = trial.load_checkpoint(None)
    if data is None:
        if trial.resume_from_step is not None:
            log.warning("no checkpoint for a resumed trial: training it from scratch")
        return None
    progress = Progress.from_checkpoint(data, fidelity, n_folds)
    if progress is None:
        log.warning("the trial's checkpoint is not a rung checkpoint of this study: ignored")
    return progress


def train_by_rungs(
    trial: RungTrial,
    objective: Mapping[str, Any],
    metric: str,
    problem: Problem,
    policy: ObjectivePolicy,
    fidelity: ManagedFidelity,
    worker: WorkerId,
) -> CVOutcome:
    """Train ``trial`` rung by rung; report at each step; stop (checkpoint saved) when told."""
    trainer = FoldTrainer(objective, trial.params, problem, policy, fidelity)
    progress = resume(trial, fidelity, len(problem.folds)) or Progress()
    stopped = trial.should_stop and progress.resource > 0
    if stopped:  # told to stop before its last worker completed it (a task run again)
        return CVOutcome(progress.mean(), tuple(progress.scores), True, progress.seconds)
    segment = _open_segment(progress, worker)
    for step in fidelity.steps:
        if step <= progress.resource:
            continue
        began = time.perf_counter()
        trainer.grow(progress, step)
        progress.seconds += time.perf_counter() - began
        progress.history.append((step, progress.mean()))
        _close_segment(segment, progress, time.perf_counter() - began)
        if fidelity.checkpoints:
            trial.save_checkpoint(progress.to_checkpoint(fidelity), step=step)
        stopped = trial.report(step, {metric: progress.mean()}, elapsed_seconds=progress.seconds)
        if stopped:
            break
        exploited = exploit(trial, progress, fidelity, len(problem.folds), step)
        if exploited is not None:  # its own checkpoint now holds the donor's models
            trainer = FoldTrainer(objective, trial.params, problem, policy, fidelity)
            progress = exploited
            trial.save_checkpoint(progress.to_checkpoint(fidelity), step=step)
            segment = _open_segment(progress, worker)
    return CVOutcome(progress.mean(), tuple(progress.scores), stopped, progress.seconds)


def exploit(
    trial: RungTrial, progress: Progress, fidelity: ManagedFidelity, n_folds: int, step: int
) -> Progress | None:
    """After a report whose reply said exploit: the donor's progress with the trial's new
    params set on its models; ``None`` when there was no exploit or the donor has no usable
    checkpoint (the trial then trains on as it was).

    Epochs and rows go on counting from this trial's own ``step`` (its compute), whatever
    the donor's models saw; a model grown by ``warm_start`` goes on from the larger of
    ``step`` and the donor's size (it cannot shrink)."""
    action = getattr(trial, "action", None)  # the SDK's Trial has it; plain handles do not
    if not isinstance(action, Mapping) or action.get("type") != "exploit":
        return None
    donor = Progress.from_checkpoint(trial.load_checkpoint(None), fidelity, n_folds)
    if donor is None:
        log.warning("trial %s has no usable checkpoint to exploit: trains on", action)
        return None
    for model in donor.models:
        final = final_step(model)
        final.set_params(**dict(trial.params))
        if hasattr(final, "_optimizer"):  # MLP: rebuilt from the new params next pass
            del final._optimizer
    grows = fidelity.kind == "warm_start"
    donor.resource = max(donor.resource, step) if grows else step
    donor.history = [*progress.history]
    donor.seconds = progress.seconds
    donor.segments = [
        *progress.segments,
        {"exploit": action.get("from_trial"), "step": step, "params": dict(trial.params)},
    ]
    return donor


def _open_segment(progress: Progress, worker: WorkerId) -> dict[str, Any]:
    segment = {
        "worker": worker.name,
        "pid": worker.pid,
        "loaded_checkpoint": progress.resource > 0,
        "from": progress.resource,
        "to": progress.resource,
        "fitted_before": [fitted_size(m) for m in progress.models],
        "fitted_after": [fitted_size(m) for m in progress.models],
        "seconds": 0.0,
    }
    progress.segments.append(segment)
    return segment


def _close_segment(segment: dict[str, Any], progress: Progress, seconds: float) -> None:
    segment["to"] = progress.resource
    segment["fitted_after"] = [fitted_size(m) for m in progress.models]
    segment["seconds"] += seconds
