"""scikit-learn integration: :class:`TuneSearchCV`, a search estimator driven by a tuneforge study.

::

    from scipy.stats import loguniform
    from sklearn.svm import SVC
    from tuneforge.sklearn import TuneSearchCV

    search = TuneSearchCV(
        SVC(),
        {"C": loguniform(1e-2, 1e3), "gamma": loguniform(1e-5, 1e-1), "kernel": ["rbf", "poly"]},
        n_trials=30,
        early_stopping={"rule": "median", "n_startup_trials": 3},
    )
    search.fit(X, y)
    search.best_params_, search.best_score_, search.predict(X_test)

The search follows :class:`sklearn.model_selection.GridSearchCV`: the same fitted
attributes (``cv_results_`` with the same keys, ``best_*``, ``scorer_``,
``n_splits_``, ``refit_time_``, ``multimetric_``) and the same delegation
(``predict``, ``predict_proba``, ``score``, ``transform``... of the refitted best
estimator). Candidates come from the study's algorithm instead of a grid, and
each cross-validation fold is reported to the server as a measurement, so an
early-stopping rule can drop a bad candidate after its first folds.

This module imports scikit-learn, SciPy and NumPy; ``import tuneforge`` does not
load it.
"""

from __future__ import annotations

import inspect
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import _fit_context, clone, is_classifier
from sklearn.metrics._scorer import _MultimetricScorer
from sklearn.model_selection import check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_method_params, indexable

from ._fidelity import Fidelity
from .client import Client
from .handles import Study
from .sklearn_folds import CandidateRun, FoldByFoldSearch, cv_results
from .sklearn_rungs import (
    ResourcePlan,
    RungSearch,
    RungTrainer,
    plan_resource,
    rank_by_resource,
    training_orders,
)
from .sklearn_space import SearchSpace, search_space_of

__all__ = ["TuneSearchCV"]

#: The largest study seed the server accepts.
_MAX_SEED = 2**32 - 1


class TuneSearchCV(BaseSearchCV):
    """Cross-validated hyperparameter search whose candidates come from a tuneforge study.

    A drop-in for :class:`~sklearn.model_selection.GridSearchCV` /
    :class:`~sklearn.model_selection.RandomizedSearchCV`: ``fit`` creates a study
    (one objective named after ``scoring``, maximized), asks it for up to
    ``n_trials`` candidates, cross-validates each and completes its trial with the
    mean test score, then refits the best candidate on the whole data.

    After each fold but the last, the running mean of the fold test scores is
    reported as a measurement at ``step`` = folds done. When the study's
    ``early_stopping`` rule says stop, the remaining folds are skipped and the
    trial is completed with that running mean (the server records it ``pruned``).
    In ``cv_results_`` a pruned candidate has NaN for its skipped split scores and
    therefore a NaN mean test score, so it ranks last, tied with failed fits (as in
    GridSearchCV); its ``mean_fit_time`` / ``mean_score_time`` (and std) are over
    the folds that ran. ``pruned_`` marks these rows.

    Parameters
    ----------
    estimator : estimator object
        The estimator to tune; cloned for every fit.
    param_space : dict or list of dict
        Either the parameter list of docs/api.md (``[{"name": "C", "type": "float", "low": 1e-3,
        "high": 1e3, "scale": "log"}, ...]``, conditions allowed), or a dict like
        RandomizedSearchCV's ``param_distributions``: ``scipy.stats.loguniform(a, b)`` ->
        float on [a, b], log scale; ``uniform(loc, scale)`` -> float on
        [loc, loc + scale]; ``randint(a, b)`` -> int on [a, b - 1]; a list of values ->
        ``discrete`` when all are numbers, else ``categorical`` (values such as None
        or estimators are sent by their repr and mapped back); a dict with ``type``
        -> that tuneforge parameter. Anything else raises ValueError naming the
        parameter.
    n_trials : int, default=50
        The study's ``max_trials``: candidates evaluated (pruned ones included).
        When every parameter has finitely many values and there are fewer
        configurations than ``n_trials``, it is lowered to that number with a
        warning, as RandomizedSearchCV does. Only ``algorithm="grid"`` guarantees
        that a finite space yields no configuration twice.
    cv : int, cross-validation generator or iterable, default=5
        As in GridSearchCV (stratified k-fold for classifiers). The splits are
        computed once, so every candidate sees the same folds.
    scoring : str, callable, list, tuple or dict, default=None
        As in GridSearchCV. With several scorers, ``refit`` must name the one to
        optimize. The study's metric is named after a string ``scoring`` (or
        ``refit`` for several), ``"score"`` otherwise.
    algorithm : str, default="auto"
        The study's suggestion algorithm (docs/api.md: auto, random, grid, sobol, tpe, gp...).
    early_stopping : dict, str or None, default=None
        The study's fold-level early-stopping rule, e.g. ``{"rule": "median",
        "n_startup_trials": 3, "min_peers": 2}``; a string is the rule name with
        default options; None is ``{"rule": "none"}``.
    n_jobs : int or None, default=1
        Candidates evaluated at the same time. Up to ``n_jobs`` trials run together;
        each round fits the next fold of every running candidate in parallel with
        joblib (processes by default; ``joblib.parallel_backend("threading")``
        works too), then reports them; a finished or pruned candidate's slot goes
        to a new suggestion. -1 means all CPUs.
    random_state : int, RandomState instance or None, default=None
        The study's seed; None or a RandomState draws one from NumPy's generator
        (so ``np.random.seed`` makes a run repeatable, as with RandomizedSearchCV).
    refit : bool, str or callable, default=True
        As in GridSearchCV.
    client : tuneforge.Client or None, default=None
        The server to use; None creates ``tuneforge.Client()`` (``TUNEFORGE_URL``, or
        an embedded server on ``./tuneforge.db``) for the duration of ``fit`` and
        closes it. A given client is shared by clones, left open, and dropped when
        the search is pickled.
    study_name : str or None, default=None
        The study's name; None is ``"TuneSearchCV-<estimator class>-<uuid>"``. A
        name that is taken raises :class:`tuneforge.Conflict`.
    resource : str or None, default=None
        Train by budgets of a resource instead of fold by fold (the study gets a
        ``fidelity``, and ``early_stopping`` defaults to ``"asha"``; ``"hyperband"``
        and ``"bohb"`` work too). ``"n_samples"``: training rows, a growing share of
        each fold (refit from scratch per budget); a parameter grown with
        ``warm_start`` (``n_estimators`` of forests and gradient boosting, ``max_iter``
        of HistGradientBoosting, ``step__n_estimators`` in a pipeline); or ``max_iter``
        of an estimator with ``partial_fit`` (SGD, MLP: one pass per unit). Each
        candidate trains every fold to the study's rungs and then ``max_resources``,
        reporting the mean test score at each; a paused candidate's fold estimators
        are saved as its checkpoint and trained on when it is promoted (see
        :mod:`tuneforge.sklearn_rungs`).
    min_resources : int or "smallest", default="smallest"
        The first budget: for ``n_samples``, ``n_splits * 2 * n_classes`` rows
        (``n_splits * 2`` for a regressor); for a parameter, 1; as in
        HalvingRandomSearchCV.
    max_resources : int or "auto", default="auto"
        The last budget: ``"auto"`` is every row for ``n_samples``; a parameter needs
        an int. The refit trains the best candidate to it on all the data.
    verbose, pre_dispatch, error_score, return_train_score
        As in GridSearchCV. A candidate whose mean test score is not finite (a
        failed fit with ``error_score=np.nan``) is recorded as ``infeasible``.

    Attributes
    ----------
    cv_results_, best_estimator_, best_score_, best_params_, best_index_, scorer_,
    n_splits_, refit_time_, multimetric_, classes_, n_features_in_, feature_names_in_
        As in GridSearchCV; ``cv_results_`` rows are the candidates in the order
        their trials started.
    study_name_ : str
        The study that holds the trials.
    study_id_ : int
        Its id on the server.
    trial_numbers_ : ndarray of int
        The trial number of each ``cv_results_`` row.
    pruned_ : ndarray of bool
        Whether each ``cv_results_`` row was stopped early.
    n_resources_, min_resources_, max_resources_
        With ``resource``: the budgets candidates train to, the first and the last.
        ``cv_results_["n_resources"]`` is the budget of each row's scores; rows rank
        by that budget first, so ``best_*`` is a candidate trained to the maximum.
    """

    _parameter_constraints: dict = {
        **BaseSearchCV._parameter_constraints,
        "param_space": [dict, list],
        "n_trials": [Interval(Integral, 1, None, closed="left")],
        "algorithm": [str],
        "early_stopping": [dict, str, None],
        "random_state": ["random_state"],
        "client": "no_validation",
        "study_name": [str, None],
        "resource": [str, None],
        "min_resources": [Interval(Integral, 1, None, closed="left"), StrOptions({"smallest"})],
        "max_resources": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    }

    def __init__(
        self,
        estimator: Any,
        param_space: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        n_trials: int = 50,
        cv: Any = 5,
        scoring: Any = None,
        algorithm: str = "auto",
        early_stopping: Mapping[str, Any] | str | None = None,
        n_jobs: int | None = 1,
        random_state: Any = None,
        refit: Any = True,
        client: Client | None = None,
        study_name: str | None = None,
        resource: str | None = None,
        min_resources: int | str = "smallest",
        max_resources: int | str = "auto",
        verbose: int = 0,
        pre_dispatch: int | str = "2*n_jobs",
        error_score: Any = np.nan,
        return_train_score: bool = False,
    ) -> None:
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_space = param_space
        self.n_trials = n_trials
        self.algorithm = algorithm
        self.early_stopping = early_stopping
        self.random_state = random_state
        self.client = client
        self.study_name = study_name
        self.resource = resource
        self.min_resources = min_resources
        self.max_resources = max_resources

    # ------------------------------------------------------------------ sklearn protocol

    def __sklearn_clone__(self) -> TuneSearchCV:
        """Clone everything but the client, which clones share (it holds connections)."""
        client = self.client
        self.client = None
        try:
            new: TuneSearchCV = super().__sklearn_clone__()
        finally:
            self.client = client
        new.client = client
        return new

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        if state.get("client") is not None:
            state = {**state, "client": None}  # a connection cannot be pickled
        return state

    def _run_search(self, evaluate_candidates: Any, **kwargs: Any) -> None:
        """Never called: :meth:`fit` drives its own fold-by-fold search (BaseSearchCV's
        ``evaluate_candidates`` runs every fold at once, which rules out stopping)."""
        raise RuntimeError("TuneSearchCV.fit runs its own fold-by-fold search")

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any = None, groups: Any = None, **fit_params: Any) -> TuneSearchCV:
        """Run the search: create the study, cross-validate its candidates, refit the best.

        ``groups`` goes to the CV splitter; ``fit_params`` to the estimator's ``fit``
        (arrays of length ``n_samples``, such as ``sample_weight``, are split with
        the folds), as in GridSearchCV.
        """
        space = search_space_of(self.param_space)
        scorers, refit_metric = self._scorers()
        metric = self._metric_name()
        n_trials = self.n_trials
        if space.size is not None and space.size < n_trials:
            warnings.warn(
                f"The total space of parameters {space.size} is smaller than "
                f"n_trials={n_trials}. Running {space.size} trials.",
                UserWarning,
                stacklevel=3,  # the caller of fit (under sklearn's _fit_context)
            )
            n_trials = space.size
        params = dict(fit_params)
        if groups is not None:
            params["groups"] = groups
        X, y = indexable(X, y)
        params = _check_method_params(X, params=params)
        routed = self._get_routed_params_for_fit(params)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        self.n_splits_ = cv.get_n_splits(X, y, **routed.splitter.split)
        splits = list(cv.split(X, y, **routed.splitter.split))
        if len(splits) != self.n_splits_:
            raise ValueError(
                "cv.split and cv.get_n_splits return inconsistent results. "
                f"Expected {self.n_splits_} splits, got {len(splits)}"
            )
        fit_kwargs = {
            "scorer": scorers,
            "fit_params": routed.estimator.fit,
            "score_params": routed.scorer.score,
            "return_train_score": self.return_train_score,
            "return_n_test_samples": True,
            "return_times": True,
            "return_parameters": False,
            "error_score": self.error_score,
            "verbose": self.verbose,
        }
        base_estimator = clone(self.estimator)
        seed = self._seed()
        plan = self._resource_plan(X, y, space) if self.resource is not None else None
        trainer = None
        if plan is not None:
            orders = training_orders(splits, y, is_classifier(self.estimator), seed)
            trainer = RungTrainer(
                plan,
                base_estimator,
                X,
                y,
                splits,
                scorers,
                routed.estimator.fit,
                routed.scorer.score,
                self.error_score,
                self.return_train_score,
                orders if plan.mode == "n_samples" else [],
            )

        client, owned = (self.client, False) if self.client is not None else (Client(), True)
        try:
            study = client.create_study(self._study_spec(space, metric, n_trials, seed, plan))
            self.study_name_ = study.name
            self.study_id_ = study.id
            search: dict[str, Any] = {
                "study": study,
                "space": space,
                "n_trials": n_trials,
                "metric": metric,
                "refit_metric": refit_metric,
                "refit": self.refit,
                "n_jobs": self.n_jobs,
                "pre_dispatch": self.pre_dispatch,
                "verbose": self.verbose,
            }
            reached: list[int] | None = None  # each candidate's last budget (rung mode)
            if trainer is None:
                runs: Sequence[CandidateRun] = FoldByFoldSearch(
                    **search,
                    base_estimator=base_estimator,
                    X=X,
                    y=y,
                    splits=splits,
                    fit_kwargs=fit_kwargs,
                ).run()
            else:
                rung_runs = RungSearch(
                    **search, trainer=trainer, budgets=self._budgets(study)
                ).run()
                runs, reached = rung_runs, [run.budget for run in rung_runs]
        finally:
            if owned:
                client.close()
        results, all_out = cv_results(
            list(runs),
            splits,
            scoring=self.scoring,
            error_score=self.error_score,
            return_train_score=self.return_train_score,
            format_results=self._format_results,
        )
        if reached is not None:
            results["n_resources"] = np.array(reached, dtype=np.int64)
            rank_by_resource(results, results["n_resources"])

        first_test_score = all_out[0]["test_scores"]
        self.multimetric_ = isinstance(first_test_score, dict)
        if callable(self.scoring) and self.multimetric_:
            self._check_refit_for_multimetric(first_test_score)
            refit_metric = self.refit

        if self.refit or not self.multimetric_:
            self.best_index_ = self._select_best_index(self.refit, refit_metric, results)
            if not callable(self.refit):
                self.best_score_ = results[f"mean_test_{refit_metric}"][self.best_index_]
            self.best_params_ = results["params"][self.best_index_]

        if self.refit:
            start = time.time()
            if trainer is not None:  # trained to max_resources, as the candidates were
                self.best_estimator_ = trainer.fit_full(self.best_params_, routed.estimator.fit)
            else:
                self.best_estimator_ = clone(base_estimator).set_params(
                    **clone(self.best_params_, safe=False)
                )
                if y is not None:
                    self.best_estimator_.fit(X, y, **routed.estimator.fit)
                else:
                    self.best_estimator_.fit(X, **routed.estimator.fit)
            self.refit_time_ = time.time() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_

        self.scorer_ = scorers._scorers if isinstance(scorers, _MultimetricScorer) else scorers
        self.cv_results_ = results
        self.trial_numbers_ = np.array([run.trial.number for run in runs], dtype=np.int64)
        self.pruned_ = np.array([run.pruned for run in runs], dtype=bool)
        return self

    def _scorers(self) -> tuple[Any, Any]:
        """``BaseSearchCV._get_scorers`` (scikit-learn 1.4 took ``convert_multimetric``)."""
        if "convert_multimetric" in inspect.signature(self._get_scorers).parameters:
            return self._get_scorers(convert_multimetric=False)  # pragma: no cover
        return self._get_scorers()

    def _metric_name(self) -> str:
        """The study's objective: the ``scoring`` string, the ``refit`` scorer, or "score"."""
        if isinstance(self.scoring, str):
            return self.scoring
        if self.scoring is None or callable(self.scoring):
            return "score"
        if not isinstance(self.refit, str):
            raise ValueError(
                "TuneSearchCV optimizes one metric: with several scorers, set refit to the "
                f"name of the one to optimize (got refit={self.refit!r})"
            )
        return self.refit

    def _seed(self) -> int:
        """The study's seed: ``random_state``, or a draw from it (NumPy's global generator)."""
        if isinstance(self.random_state, Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(_MAX_SEED))

    def _resource_plan(self, X: Any, y: Any, space: SearchSpace) -> ResourcePlan:
        """What ``resource`` means for this estimator and data (ValueError if it cannot work)."""
        assert self.resource is not None
        plan = plan_resource(
            self.estimator,
            self.resource,
            self.min_resources,
            self.max_resources,
            X=X,
            y=y,
            n_splits=self.n_splits_,
            searched=[p["name"] for p in space.parameters],
        )
        self.min_resources_, self.max_resources_ = plan.min, plan.max
        return plan

    def _budgets(self, study: Study) -> list[int]:
        """The resources every candidate trains to: the study's rungs, then the maximum."""
        fidelity = Fidelity.of(study.data)
        assert fidelity is not None
        self.n_resources_ = fidelity.budgets()
        return self.n_resources_

    def _study_spec(
        self,
        space: SearchSpace,
        metric: str,
        n_trials: int,
        seed: int,
        plan: ResourcePlan | None,
    ) -> dict[str, Any]:
        rule = self.early_stopping
        if rule is None:  # with a resource, successive halving is the point
            early_stopping: dict[str, Any] = {"rule": "none" if plan is None else "asha"}
        elif isinstance(rule, str):
            early_stopping = {"rule": rule}
        else:
            early_stopping = dict(rule)
        estimator = type(self.estimator)
        name = self.study_name or f"TuneSearchCV-{estimator.__name__}-{uuid.uuid4().hex}"
        return {
            "name": name,
            "parameters": space.parameters,
            "metrics": [{"name": metric, "goal": "maximize"}],
            "algorithm": self.algorithm,
            "early_stopping": early_stopping,
            "fidelity": None if plan is None else plan.fidelity,
            "max_trials": n_trials,
            "seed": seed,
            "metadata": {
                "source": "tuneforge.sklearn.TuneSearchCV",
                "estimator": f"{estimator.__module__}.{estimator.__qualname__}",
            },
        }
