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

import contextlib
import inspect
import math
import re
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import _fit_context, clone, is_classifier
from sklearn.metrics._scorer import _MultimetricScorer
from sklearn.model_selection import check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.model_selection._validation import (
    _fit_and_score,
    _insert_error_scores,
    _warn_or_raise_about_fit_failures,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _check_method_params, indexable

from .client import Client
from .handles import Study, Trial

__all__ = ["TuneSearchCV"]

#: The largest study seed the server accepts.
_MAX_SEED = 2**32 - 1
#: Categorical labels (for values the API cannot carry, such as None) are cut to this length.
_MAX_LABEL = 200
#: sklearn's warning about NaN mean scores, which pruned candidates raise on purpose.
_NON_FINITE = re.compile(r"One or more of the (test|train) scores are non-finite")


# --------------------------------------------------------------------------- search space


@dataclass(frozen=True)
class _Space:
    """The study's parameter list and how to turn a suggestion back into estimator params."""

    parameters: list[dict[str, Any]]
    decoders: dict[str, Callable[[Any], Any]]

    @property
    def size(self) -> int | None:
        """How many configurations the space has at most; None when it is continuous."""
        total = 1
        try:
            for p in self.parameters:
                if p["type"] in ("discrete", "categorical"):
                    total *= len(p["values"])
                elif p["type"] == "int" or p.get("step") is not None:
                    step = p.get("step") or 1
                    total *= math.floor((p["high"] - p["low"]) / step + 1e-9) + 1
                else:
                    return None
        except (KeyError, TypeError, ValueError):  # a malformed spec: the server says what
            return None
        return total

    def decode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Estimator parameters (in the space's order) from a trial's ``params``."""
        return {
            p["name"]: self.decoders[p["name"]](params[p["name"]])
            for p in self.parameters
            if p["name"] in params
        }


def _space_of(param_space: Any) -> _Space:
    """Convert ``param_space`` (API.md parameter list or a RandomizedSearchCV-style dict)."""
    if isinstance(param_space, Mapping):
        if not param_space:
            raise ValueError("param_space is empty: give at least one parameter")
        parameters: list[dict[str, Any]] = []
        decoders: dict[str, Callable[[Any], Any]] = {}
        for name, value in param_space.items():
            if not isinstance(name, str):
                raise ValueError(f"param_space keys must be parameter names, got {name!r}")
            spec, decode = _parameter(name, value)
            parameters.append(spec)
            decoders[name] = decode
        return _Space(parameters, decoders)
    if isinstance(param_space, Sequence) and not isinstance(param_space, str | bytes):
        if not param_space:
            raise ValueError("param_space is empty: give at least one parameter")
        specs = list(param_space)
        if not all(isinstance(s, Mapping) and "name" in s and "type" in s for s in specs):
            raise ValueError(
                "a list param_space must hold tuneforge parameter dicts with 'name' and "
                "'type' (API.md); for several RandomizedSearchCV-style sub-spaces use one "
                "dict with a categorical parent and 'condition's instead"
            )
        return _Space([dict(s) for s in specs], {s["name"]: _typed(s["type"]) for s in specs})
    raise ValueError(
        "param_space must be a dict {name: distribution or list of values} or a list of "
        f"tuneforge parameter dicts, got {type(param_space).__name__}"
    )


def _typed(ptype: Any) -> Callable[[Any], Any]:
    if ptype == "int":
        return int
    if ptype == "float":
        return float
    return _identity


def _identity(value: Any) -> Any:
    return value


def _parameter(name: str, value: Any) -> tuple[dict[str, Any], Callable[[Any], Any]]:
    """One dict entry of a RandomizedSearchCV-style space as an API.md parameter."""
    if isinstance(value, Mapping):
        if "type" not in value:
            raise ValueError(
                f"parameter {name!r}: a dict value must be a tuneforge parameter spec with "
                f"'type' (float | int | discrete | categorical), got {dict(value)!r}"
            )
        return {"name": name, **value}, _typed(value["type"])
    if hasattr(value, "dist") and hasattr(value, "support"):  # a frozen scipy.stats distribution
        return _distribution(name, value)
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes):
        return _choices(name, list(value))
    kind = "distribution" if hasattr(value, "rvs") else "value"
    raise ValueError(
        f"parameter {name!r}: unsupported {kind} {value!r}; use scipy.stats loguniform, "
        "uniform or randint, a list of values, or a tuneforge parameter dict"
    )


def _distribution(name: str, dist: Any) -> tuple[dict[str, Any], Callable[[Any], Any]]:
    kind = getattr(dist.dist, "name", type(dist.dist).__name__)
    low, high = (float(b) for b in dist.support())
    if kind in ("loguniform", "reciprocal"):
        # loguniform(a, b, scale=s) is log-uniform on [a s, b s]; a loc shift makes it not
        if not (
            low > 0 and math.isclose(float(dist.median()), math.sqrt(low * high), rel_tol=1e-9)
        ):
            raise ValueError(
                f"parameter {name!r}: loguniform with a loc shift is not log-uniform on an "
                "interval; use loguniform(a, b) (optionally with scale)"
            )
        return {"name": name, "type": "float", "low": low, "high": high, "scale": "log"}, float
    if kind == "uniform":
        return {"name": name, "type": "float", "low": low, "high": high}, float
    if kind == "randint":
        lo, hi = int(low), int(high)  # support() is [a, b - 1]
        if lo == hi:
            return {"name": name, "type": "discrete", "values": [lo]}, int
        return {"name": name, "type": "int", "low": lo, "high": hi}, int
    raise ValueError(
        f"parameter {name!r}: unsupported distribution scipy.stats.{kind}; use loguniform "
        "(float, log scale), uniform (float) or randint (int), or a list of values"
    )


def _plain(value: Any) -> Any:
    """NumPy scalars as Python scalars (the JSON the server reads)."""
    return value.item() if isinstance(value, np.generic) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_native(value: Any) -> bool:
    """Whether the API can carry this categorical value as it is."""
    if isinstance(value, float):
        return math.isfinite(value)
    return (isinstance(value, str) and len(value) <= 1000) or isinstance(value, int | bool)


def _same(a: Any, b: Any) -> bool:
    """The server's equality of choice values: ``True`` is not ``1``, ``"1"`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return a is b


def _choices(name: str, raw: list[Any]) -> tuple[dict[str, Any], Callable[[Any], Any]]:
    """A list of values: ``discrete`` when all are numbers, else ``categorical``.

    Duplicates are dropped (a study draws values, it does not weight them). Values
    the API cannot carry (None, tuples, estimators...) are sent as their ``repr``
    and mapped back to the original objects.
    """
    if not raw:
        raise ValueError(f"parameter {name!r}: the list of values is empty")
    values: list[Any] = []
    for v in map(_plain, raw):
        if not any(_same(v, seen) for seen in values):
            values.append(v)
    if all(_is_number(v) for v in values):
        spec = {"name": name, "type": "discrete", "values": values}
        return spec, _matcher(values)
    if all(_is_native(v) for v in values):
        return {"name": name, "type": "categorical", "values": values}, _matcher(values)
    labels: dict[str, Any] = {}
    for i, v in enumerate(values):
        label = repr(v)
        if len(label) > _MAX_LABEL:
            label = label[: _MAX_LABEL - 3] + "..."
        if label in labels:
            label = f"{label} #{i}"
        labels[label] = v
    return {"name": name, "type": "categorical", "values": list(labels)}, labels.__getitem__


def _matcher(values: list[Any]) -> Callable[[Any], Any]:
    """Map a value from the server back to the user's value (restoring int vs float)."""

    def decode(value: Any) -> Any:
        for v in values:
            if _same(v, value):
                return v
        return value

    return decode


# --------------------------------------------------------------------------- the search


@dataclass
class _Run:
    """One candidate: its trial, its estimator params and the folds evaluated so far."""

    index: int
    trial: Trial
    params: dict[str, Any]
    outs: list[dict[str, Any]] = field(default_factory=list)
    pruned: bool = False
    elapsed: float = 0.0


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
        Either the API.md parameter list (``[{"name": "C", "type": "float", "low": 1e-3,
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
        The study's suggestion algorithm (API.md: auto, random, grid, sobol, tpe, gp...).
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
        raise NotImplementedError("TuneSearchCV.fit runs its own fold-by-fold search")

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any = None, groups: Any = None, **fit_params: Any) -> TuneSearchCV:
        """Run the search: create the study, cross-validate its candidates, refit the best.

        ``groups`` goes to the CV splitter; ``fit_params`` to the estimator's ``fit``
        (arrays of length ``n_samples``, such as ``sample_weight``, are split with
        the folds), as in GridSearchCV.
        """
        space = _space_of(self.param_space)
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

        client, owned = (self.client, False) if self.client is not None else (Client(), True)
        try:
            study = client.create_study(self._study_spec(space, metric, n_trials))
            self.study_name_ = study.name
            self.study_id_ = study.id
            runs = self._search(
                study,
                space,
                n_trials,
                metric,
                refit_metric,
                base_estimator,
                X,
                y,
                splits,
                fit_kwargs,
            )
        finally:
            if owned:
                client.close()
        results, all_out = self._results(runs, splits)

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
            self.best_estimator_ = clone(base_estimator).set_params(
                **clone(self.best_params_, safe=False)
            )
            start = time.time()
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

    def _study_spec(self, space: _Space, metric: str, n_trials: int) -> dict[str, Any]:
        rule = self.early_stopping
        if rule is None:
            early_stopping: dict[str, Any] = {"rule": "none"}
        elif isinstance(rule, str):
            early_stopping = {"rule": rule}
        else:
            early_stopping = dict(rule)
        if isinstance(self.random_state, Integral):
            seed = int(self.random_state)
        else:
            seed = int(check_random_state(self.random_state).randint(_MAX_SEED))
        estimator = type(self.estimator)
        name = self.study_name or f"TuneSearchCV-{estimator.__name__}-{uuid.uuid4().hex}"
        return {
            "name": name,
            "parameters": space.parameters,
            "metrics": [{"name": metric, "goal": "maximize"}],
            "algorithm": self.algorithm,
            "early_stopping": early_stopping,
            "max_trials": n_trials,
            "seed": seed,
            "metadata": {
                "source": "tuneforge.sklearn.TuneSearchCV",
                "estimator": f"{estimator.__module__}.{estimator.__qualname__}",
            },
        }

    def _search(
        self,
        study: Study,
        space: _Space,
        n_trials: int,
        metric: str,
        refit_metric: Any,
        base_estimator: Any,
        X: Any,
        y: Any,
        splits: list[tuple[Any, Any]],
        fit_kwargs: dict[str, Any],
    ) -> list[_Run]:
        """Evaluate candidates fold by fold, up to ``n_jobs`` at a time; every run in order."""
        width = max(1, min(effective_n_jobs(self.n_jobs), n_trials))
        n_splits = len(splits)
        if self.verbose > 0:
            print(
                f"Fitting {n_splits} folds for each of up to {n_trials} candidates "
                f"from study {study.name!r}"
            )
        runs: list[_Run] = []
        pool: list[_Run] = []
        try:
            with Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch) as parallel:
                while True:
                    if len(pool) < width:
                        # suggest gives this client its own running trials back first
                        held = {run.trial.number for run in pool}
                        for trial in study.suggest(count=width):
                            if trial.number not in held:
                                run = _Run(len(runs), trial, space.decode(trial.params))
                                runs.append(run)
                                pool.append(run)
                    if not pool:
                        break
                    outs = parallel(
                        delayed(_fit_and_score)(
                            clone(base_estimator),
                            X,
                            y,
                            train=splits[len(run.outs)][0],
                            test=splits[len(run.outs)][1],
                            parameters=run.params,
                            split_progress=(len(run.outs), n_splits),
                            candidate_progress=(run.index, n_trials),
                            **fit_kwargs,
                        )
                        for run in pool
                    )
                    for run, out in zip(pool, outs, strict=True):
                        self._advance(run, out, metric, refit_metric, n_splits)
                    pool = [run for run in pool if run.trial.data.is_running]
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else _reason(exc)
            for run in pool:
                if run.trial.data.is_running:
                    with contextlib.suppress(Exception):  # the original error matters more
                        run.trial.fail(reason, retry=False)
            raise
        if not runs:
            raise ValueError(
                f"No fits were performed: study {study.name!r} handed out no trials "
                f"(state {study.refresh().state!r})"
            )
        return runs

    def _advance(
        self, run: _Run, out: dict[str, Any], metric: str, refit_metric: Any, n_splits: int
    ) -> None:
        """Record one fold of ``run``; report it, or finish the trial after the last fold."""
        run.outs.append(out)
        run.elapsed += float(out["fit_time"]) + float(out["score_time"])
        done = len(run.outs)
        mean = float(np.mean([self._objective(o, refit_metric) for o in run.outs]))
        if done < n_splits:
            if not math.isfinite(mean):  # a failed fold: no value to compare, keep going
                return
            if not run.trial.report(done, {metric: mean}, elapsed_seconds=run.elapsed):
                return
            run.pruned = True
        if math.isfinite(mean):
            run.trial.complete({metric: mean})
        else:
            errors = [o["fit_error"] for o in run.outs if o.get("fit_error")]
            reason = _last_line(errors[0]) if errors else "the mean test score is not finite"
            run.trial.infeasible(reason)

    def _objective(self, out: Mapping[str, Any], refit_metric: Any) -> float:
        """The optimized score of one fold."""
        scores = out["test_scores"]
        if not isinstance(scores, Mapping):
            return float(scores)
        for key in (refit_metric, self.refit):
            if isinstance(key, str) and key in scores:
                return float(scores[key])
        raise ValueError(
            "TuneSearchCV optimizes one metric: the scorer returned several "
            f"({sorted(scores)}); set refit to the name of the one to optimize"
        )

    def _results(
        self, runs: list[_Run], splits: list[tuple[Any, Any]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``cv_results_`` from the runs (pruned runs padded with NaN folds) and the outs."""
        real = [out for run in runs for out in run.outs]
        _warn_or_raise_about_fit_failures(real, self.error_score)
        if callable(self.scoring):
            _insert_error_scores(real, self.error_score)
        sample = next((o["test_scores"] for o in real if isinstance(o["test_scores"], dict)), None)

        def nan_scores() -> Any:
            return dict.fromkeys(sample, np.nan) if sample is not None else np.nan

        all_out: list[dict[str, Any]] = []
        for run in runs:
            all_out += run.outs
            for _, test in splits[len(run.outs) :]:
                skipped = {
                    "fit_time": np.nan,
                    "score_time": np.nan,
                    "test_scores": nan_scores(),
                    "n_test_samples": len(test),
                    "fit_error": None,
                }
                if self.return_train_score:
                    skipped["train_scores"] = nan_scores()
                all_out.append(skipped)

        pruned = np.array([run.pruned for run in runs], dtype=bool)
        params = [run.params for run in runs]
        with warnings.catch_warnings():
            if pruned.any():
                warnings.filterwarnings("ignore", message=_NON_FINITE.pattern)
            results: dict[str, Any] = self._format_results(params, len(splits), all_out)
        if pruned.any():
            for key in ("fit_time", "score_time"):  # over the folds that ran
                times = np.array([o[key] for o in all_out], dtype=np.float64)
                times = times.reshape(len(runs), len(splits))[pruned]
                results[f"mean_{key}"][pruned] = np.nanmean(times, axis=1)
                results[f"std_{key}"][pruned] = np.nanstd(times, axis=1)
            for key, value in results.items():
                kind = key.split("_")[1] if key.startswith("mean_") else ""
                means = np.asarray(value)[~pruned]
                if kind in ("test", "train") and not np.isfinite(means).all():
                    warnings.warn(
                        f"One or more of the {kind} scores are non-finite: {means}",
                        category=UserWarning,
                        stacklevel=4,  # the caller of fit
                    )
        return results, all_out


def _last_line(text: str, limit: int = 500) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    line = lines[-1] if lines else "fit failed"
    return line[:limit]


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
