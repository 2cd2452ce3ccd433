"""Rung-based training for :class:`tuneforge.sklearn.TuneSearchCV` (``resource=...``).

Each candidate trains on every cross-validation fold to a budget of the resource,
reports the mean test score at ``step`` = that budget, and goes on to the next
budget (the study's rungs, then ``max_resources``) until the study's rule
(``asha``, ``hyperband``, ``bohb``...) stops it. The resource is one of:

- ``"n_samples"``: training rows. At budget ``b`` each fold trains on a
  ``b / n_samples`` share of its training rows (a fixed, class-balanced order,
  so a larger budget sees a superset) and is scored on its whole test fold.
  A larger budget refits from scratch, as in HalvingRandomSearchCV.
- a parameter with ``warm_start`` (``n_estimators`` of forests and gradient
  boosting, ``max_iter`` of HistGradientBoosting): the fold's estimator keeps
  its trees / iterations and adds the ones up to the new budget.
- ``max_iter`` of an estimator with ``partial_fit`` (SGDClassifier,
  MLPClassifier...): one ``partial_fit`` pass over the training fold per unit.

When the rule pauses a candidate, its fitted fold estimators are saved as the
trial's checkpoint; when the study promotes it, suggest hands it back and it
loads them and trains on from there (``n_samples`` has nothing to carry over).

This module imports scikit-learn; ``import tuneforge`` does not load it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from traceback import format_exc
from typing import Any

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import clone, is_classifier
from sklearn.metrics._scorer import _MultimetricScorer
from sklearn.model_selection._validation import _score
from sklearn.utils.metaestimators import _safe_split
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _check_method_params, _num_samples

from .handles import Study, Trial
from .sklearn_folds import CandidateRun, fail_running, last_line, objective_score
from .sklearn_space import SearchSpace

#: ``resource`` values that are not estimator parameters.
N_SAMPLES = "n_samples"


@dataclass(frozen=True)
class ResourcePlan:
    """What a budget means for the estimator, and the study's fidelity range."""

    name: str
    #: "n_samples", "warm_start" or "partial_fit".
    mode: str
    min: int
    max: int
    n_samples: int
    #: The ``warm_start`` parameter to switch on (``step__warm_start`` in a pipeline).
    warm_start_key: str | None = None
    #: Every class of ``y``, for a classifier's first ``partial_fit``.
    classes: Any = None

    @property
    def fidelity(self) -> dict[str, Any]:
        """The study's ``fidelity``."""
        return {"name": self.name, "min": self.min, "max": self.max}


def plan_resource(
    estimator: Any,
    resource: str,
    min_resources: int | str,
    max_resources: int | str,
    *,
    X: Any,
    y: Any,
    n_splits: int,
    searched: Sequence[str],
) -> ResourcePlan:
    """Check ``resource`` against the estimator and the data; raise ValueError naming the rule."""
    if resource in searched:
        raise ValueError(
            f"resource={resource!r} is also in param_space: the search sets it, budget by budget"
        )
    n_samples = _num_samples(X)
    classes = np.unique(np.asarray(y)) if y is not None and is_classifier(estimator) else None
    if resource == N_SAMPLES:
        mode, key = N_SAMPLES, None
        smallest = n_splits * 2 * (len(classes) if classes is not None else 1)
        auto: int | None = n_samples
    else:
        mode, key = _mode(estimator, resource)
        smallest, auto = 1, None
    low = smallest if isinstance(min_resources, str) else int(min_resources)
    high = auto if isinstance(max_resources, str) else int(max_resources)
    if high is None:
        raise ValueError(
            f"max_resources='auto' works with resource='n_samples' only; give the largest "
            f"{resource} to train to, e.g. max_resources=100"
        )
    if not 1 <= low < high:
        raise ValueError(f"min_resources ({low}) must be >= 1 and below max_resources ({high})")
    if mode == N_SAMPLES and high > n_samples:
        raise ValueError(f"max_resources ({high}) is above the number of samples ({n_samples})")
    kept = classes if mode == "partial_fit" else None
    return ResourcePlan(resource, mode, low, high, n_samples, key, kept)


def _mode(estimator: Any, resource: str) -> tuple[str, str | None]:
    """How ``estimator`` grows ``resource``: partial_fit epochs, or warm_start."""
    params = estimator.get_params(deep=True)
    if resource not in params:
        raise ValueError(
            f"resource={resource!r} is not a parameter of {type(estimator).__name__}: use "
            "'n_samples', or a parameter it grows with warm_start (n_estimators, max_iter) "
            "or partial_fit (max_iter)"
        )
    prefix, _, leaf = resource.rpartition("__")
    if leaf == "max_iter" and not prefix and hasattr(estimator, "partial_fit"):
        return "partial_fit", None
    key = f"{prefix}__warm_start" if prefix else "warm_start"
    if key in params and not _partial_fit_step(params, prefix):
        return "warm_start", key
    raise ValueError(
        f"resource={resource!r}: {type(estimator).__name__} can neither grow it with "
        "warm_start nor train it with partial_fit (a Pipeline cannot partial_fit: tune the "
        "estimator itself, or use resource='n_samples')"
    )


def _partial_fit_step(params: Mapping[str, Any], prefix: str) -> bool:
    """Whether a pipeline step is an incremental learner (SGD, MLP), whose ``max_iter`` and
    ``warm_start`` count each fit call: it needs partial_fit on the estimator itself."""
    return bool(prefix) and hasattr(params.get(prefix), "partial_fit")


@dataclass
class RungTrainer:
    """Trains one fold of a candidate from one budget to the next, and scores it (what
    sklearn's ``_fit_and_score`` does for one fit, for a fit that goes on)."""

    plan: ResourcePlan
    base_estimator: Any
    X: Any
    y: Any
    splits: list[tuple[Any, Any]]
    scorer: Any
    fit_params: dict[str, Any]
    score_params: dict[str, Any]
    error_score: Any
    return_train_score: bool
    #: Per fold, the training rows in the order ``n_samples`` budgets take them.
    orders: list[Any] = field(default_factory=list)

    def advance(
        self, fold: int, estimator: Any, params: Mapping[str, Any], done: int, budget: int
    ) -> tuple[Any, dict[str, Any]]:
        """The fold's estimator trained to ``budget`` (from ``done``) and its scores."""
        train, test = self.splits[fold]
        if self.plan.mode == N_SAMPLES:
            train = self.orders[fold][: _rows(len(train), budget, self.plan.n_samples)]
            estimator = None
        if estimator is None:
            estimator, done = self.fresh(params), 0
        X_train, y_train = _safe_split(estimator, self.X, self.y, train)
        X_test, y_test = _safe_split(estimator, self.X, self.y, test, train)
        fit_params = _check_method_params(self.X, params=self.fit_params, indices=train)
        start = time.time()
        try:
            self.train(estimator, X_train, y_train, fit_params, done, budget)
        except Exception:
            if self.error_score == "raise":
                raise
            return None, self._failed(time.time() - start, _num_samples(X_test))
        fit_time = time.time() - start
        out = {"fit_error": None, "n_test_samples": _num_samples(X_test), "fit_time": fit_time}
        out["test_scores"] = self._score(estimator, X_test, y_test, test)
        if self.return_train_score:
            out["train_scores"] = self._score(estimator, X_train, y_train, train)
        out["score_time"] = time.time() - start - fit_time
        return estimator, out

    def fresh(self, params: Mapping[str, Any]) -> Any:
        """An unfitted estimator with the candidate's params (warm_start on when it grows)."""
        estimator = clone(self.base_estimator).set_params(**clone(dict(params), safe=False))
        if self.plan.warm_start_key is not None:
            estimator.set_params(**{self.plan.warm_start_key: True})
        return estimator

    def train(
        self, estimator: Any, X: Any, y: Any, fit_params: dict[str, Any], done: int, budget: int
    ) -> None:
        """Train ``estimator`` from ``done`` to ``budget`` units of the resource."""
        data = (X,) if y is None else (X, y)
        if self.plan.mode == "partial_fit":
            extra = {} if self.plan.classes is None else {"classes": self.plan.classes}
            for _ in range(done, budget):
                estimator.partial_fit(*data, **extra, **fit_params)
            return
        if self.plan.mode == "warm_start":
            estimator.set_params(**{self.plan.name: budget})
        estimator.fit(*data, **fit_params)

    def fit_full(self, params: Mapping[str, Any], fit_params: dict[str, Any]) -> Any:
        """The candidate trained on all the data to ``max_resources`` (the search's refit;
        for ``n_samples``, every row)."""
        estimator = self.fresh(params)
        self.train(estimator, self.X, self.y, fit_params, 0, self.plan.max)
        return estimator

    def _score(self, estimator: Any, X: Any, y: Any, rows: Any) -> Any:
        params = _check_method_params(self.X, params=self.score_params, indices=rows)
        return _score(estimator, X, y, self.scorer, params, self.error_score)

    def _failed(self, fit_time: float, n_test: int) -> dict[str, Any]:
        """A fold whose training raised, as ``_fit_and_score`` records it."""
        if isinstance(self.scorer, _MultimetricScorer):
            scores: Any = dict.fromkeys(self.scorer._scorers, self.error_score)
        else:
            scores = self.error_score
        out = {"fit_error": format_exc(), "n_test_samples": n_test, "test_scores": scores}
        out.update(fit_time=fit_time, score_time=0.0)
        if self.return_train_score:
            out["train_scores"] = scores.copy() if isinstance(scores, dict) else scores
        return out


def _rows(n_train: int, budget: int, n_samples: int) -> int:
    """Training rows of a fold at ``budget``: the fold's share ``budget / n_samples``."""
    return max(1, min(n_train, math.ceil(n_train * budget / n_samples)))


def training_orders(
    splits: list[tuple[Any, Any]], y: Any, classifier: bool, seed: int
) -> list[Any]:
    """Per fold, its training rows shuffled (seeded) and, for a classifier, interleaved by
    class so that every prefix keeps the classes' shares (a small budget sees every class)."""
    rng = np.random.RandomState(seed)
    labels = np.asarray(y) if y is not None and classifier else None
    orders = []
    for train, _ in splits:
        order = rng.permutation(np.asarray(train))
        if labels is not None:
            _, inverse, counts = np.unique(labels[order], return_inverse=True, return_counts=True)
            rank = np.empty(len(order))
            for c in range(len(counts)):
                rank[inverse == c] = np.arange(counts[c])
            order = order[np.argsort((rank + 0.5) / counts[inverse], kind="stable")]
        orders.append(order)
    return orders


@dataclass
class RungRun(CandidateRun):
    """A candidate trained by budgets: the budget it reached and its fold estimators."""

    budget: int = 0
    estimators: list[Any] | None = None


@dataclass
class RungSearch:
    """The candidates of one rung-based ``TuneSearchCV.fit``."""

    study: Study
    space: SearchSpace
    n_trials: int
    metric: str
    refit_metric: Any
    refit: Any
    trainer: RungTrainer
    #: The budgets every candidate trains to and reports at, ending at max_resources.
    budgets: list[int]
    n_jobs: int | None
    pre_dispatch: int | str
    verbose: int
    _by_number: dict[int, RungRun] = field(default_factory=dict)

    def run(self) -> list[RungRun]:
        """Train candidates budget by budget, up to ``n_jobs`` at a time; every run in order."""
        runs: list[RungRun] = []
        pool: list[RungRun] = []
        width = max(1, min(effective_n_jobs(self.n_jobs), self.n_trials))
        if self.verbose > 0:
            plan = self.trainer.plan
            print(
                f"Training up to {self.n_trials} candidates on {len(self.trainer.splits)} folds "
                f"from study {self.study.name!r}, {plan.name} budgets {self.budgets}"
            )
        try:
            with Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch) as parallel:
                while True:
                    if len(pool) < width:
                        held = {run.trial.number for run in pool}
                        for trial in self.study.suggest(count=width):
                            if trial.number not in held:
                                self._take(trial, runs, pool)
                    if not pool:
                        break
                    self._round(parallel, pool)
                    pool = [run for run in pool if run.trial.data.is_running]
        except BaseException as exc:
            fail_running(pool, exc)
            raise
        for run in runs:
            run.pruned = run.budget < self.trainer.plan.max
        return runs

    def _take(self, trial: Trial, runs: list[RungRun], pool: list[RungRun]) -> None:
        """Add the run of a new trial, or of a promoted one (its fold estimators loaded),
        to ``pool``."""
        run = self._by_number.get(trial.number)
        if run is None:
            run = RungRun(len(runs), trial, self.space.decode(trial.params))
            runs.append(run)
            self._by_number[trial.number] = run
        run.trial = trial
        if trial.resume_from_step is not None:
            self._resume(run, trial)
        if run.budget < self.trainer.plan.max:
            pool.append(run)
        elif trial.values:  # promoted with nothing left to train: it is done
            trial.complete(trial.values)
        else:
            trial.fail("promoted at max_resources without values", retry=False)

    def _resume(self, run: RungRun, trial: Trial) -> None:
        """Continue from the checkpoint: the budget reached and the fold estimators."""
        run.budget, run.estimators = trial.resume_from_step or 0, None
        if self.trainer.plan.mode == N_SAMPLES:
            return  # a larger share of rows is a new fit
        state = trial.load_checkpoint()
        if state is not None:
            run.budget, run.estimators = int(state["budget"]), list(state["estimators"])
        else:  # lost (e.g. saved by nobody): train from scratch
            run.budget = 0

    def _round(self, parallel: Any, pool: list[RungRun]) -> None:
        """Every running candidate to its next budget, all folds in parallel."""
        n_splits = len(self.trainer.splits)
        nexts = [self._next_budget(run) for run in pool]
        done = parallel(
            delayed(self.trainer.advance)(
                fold,
                run.estimators[fold] if run.estimators else None,
                run.params,
                run.budget,
                budget,
            )
            for run, budget in zip(pool, nexts, strict=True)
            for fold in range(n_splits)
        )
        for i, (run, budget) in enumerate(zip(pool, nexts, strict=True)):
            folds = done[i * n_splits : (i + 1) * n_splits]
            self._advance(run, budget, [e for e, _ in folds], [o for _, o in folds])

    def _next_budget(self, run: RungRun) -> int:
        return next(b for b in self.budgets if b > run.budget)

    def _advance(
        self, run: RungRun, budget: int, estimators: list[Any], outs: list[dict[str, Any]]
    ) -> None:
        """Record a budget: report its mean score; finish, pause or go on as the study says."""
        self._add_times(run, outs)
        run.outs, run.budget = outs, budget
        run.elapsed = sum(float(o["fit_time"]) + float(o["score_time"]) for o in outs)
        grows = self.trainer.plan.mode != N_SAMPLES
        run.estimators = estimators if grows else None
        mean = float(np.mean([objective_score(o, self.refit_metric, self.refit) for o in outs]))
        if not math.isfinite(mean):
            errors = [o["fit_error"] for o in outs if o.get("fit_error")]
            run.estimators = None
            run.trial.infeasible(last_line(errors[0]) if errors else "the mean score is not finite")
            return
        values = {self.metric: mean}
        stop = run.trial.report(budget, values, elapsed_seconds=run.elapsed)
        if budget >= self.trainer.plan.max or stop:
            if stop and grows and budget < self.trainer.plan.max:
                run.trial.save_checkpoint({"budget": budget, "estimators": estimators}, step=budget)
            run.estimators = None
            run.trial.complete(values)  # completed, or paused / pruned as the rule said

    @staticmethod
    def _add_times(run: RungRun, outs: list[dict[str, Any]]) -> None:
        """Fit and score times add up over the budgets a fold trained."""
        for before, out in zip(run.outs, outs, strict=False):
            for key in ("fit_time", "score_time"):
                out[key] = float(out[key]) + float(before[key])


def rank_by_resource(results: dict[str, Any], n_resources: Any) -> None:
    """Rank candidates first by the resource they reached, then by mean test score, failed
    ones last (``rank_test_*``), so the best candidate is one trained to ``max_resources``."""
    resources = np.asarray(n_resources, dtype=np.float64)
    for key in [k for k in results if k.startswith("rank_test_")]:
        means = np.asarray(results[f"mean_test_{key[len('rank_test_') :]}"], dtype=np.float64)
        failed = np.isnan(means)
        score = np.where(failed, -np.inf, means)
        order = np.lexsort((-score, -resources, failed))
        ranks = np.empty(len(means), dtype=np.int32)
        previous: tuple[Any, ...] | None = None
        rank = 0
        for position, i in enumerate(order):
            current = (failed[i], resources[i], score[i])
            if current != previous:
                rank, previous = position + 1, current
            ranks[i] = rank
        results[key] = ranks
