"""How :class:`tuneforge.sklearn.TuneSearchCV` evaluates its candidates: fold by fold.

:class:`FoldByFoldSearch` asks the study for candidates, fits the next fold of up
to ``n_jobs`` running candidates at a time, reports each candidate's running mean
so the study's early-stopping rule can prune it, and completes its trial after the
last fold. :func:`cv_results` turns the runs into GridSearchCV's ``cv_results_``
(pruned candidates padded with NaN folds).

This module imports scikit-learn; ``import tuneforge`` does not load it.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import clone
from sklearn.model_selection._validation import (
    _fit_and_score,
    _insert_error_scores,
    _warn_or_raise_about_fit_failures,
)
from sklearn.utils.parallel import Parallel, delayed

from .handles import Study, Trial
from .sklearn_space import SearchSpace

#: sklearn's warning about NaN mean scores, which pruned candidates raise on purpose.
_NON_FINITE = re.compile(r"One or more of the (test|train) scores are non-finite")


@dataclass
class CandidateRun:
    """One candidate: its trial, its estimator params and the folds evaluated so far."""

    index: int
    trial: Trial
    params: dict[str, Any]
    outs: list[dict[str, Any]] = field(default_factory=list)
    pruned: bool = False
    elapsed: float = 0.0


@dataclass
class FoldByFoldSearch:
    """The candidates of one ``TuneSearchCV.fit``: the study, the data and the settings."""

    study: Study
    space: SearchSpace
    n_trials: int
    #: The study's objective name.
    metric: str
    #: The scorer whose fold scores are optimized (``BaseSearchCV._get_scorers``).
    refit_metric: Any
    #: ``TuneSearchCV.refit``, which can also name that scorer.
    refit: Any
    base_estimator: Any
    X: Any
    y: Any
    splits: list[tuple[Any, Any]]
    #: Keyword arguments of sklearn's ``_fit_and_score`` besides the data and params.
    fit_kwargs: dict[str, Any]
    n_jobs: int | None
    pre_dispatch: int | str
    verbose: int

    def run(self) -> list[CandidateRun]:
        """Evaluate candidates fold by fold, up to ``n_jobs`` at a time; every run in order."""
        study, n_trials, splits = self.study, self.n_trials, self.splits
        width = max(1, min(effective_n_jobs(self.n_jobs), n_trials))
        n_splits = len(splits)
        if self.verbose > 0:
            print(
                f"Fitting {n_splits} folds for each of up to {n_trials} candidates "
                f"from study {study.name!r}"
            )
        runs: list[CandidateRun] = []
        pool: list[CandidateRun] = []
        try:
            with Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch) as parallel:
                while True:
                    if len(pool) < width:
                        # suggest gives this client its own running trials back first
                        held = {run.trial.number for run in pool}
                        for trial in study.suggest(count=width):
                            if trial.number not in held:
                                run = CandidateRun(
                                    len(runs), trial, self.space.decode(trial.params)
                                )
                                runs.append(run)
                                pool.append(run)
                    if not pool:
                        break
                    outs = parallel(
                        delayed(_fit_and_score)(
                            clone(self.base_estimator),
                            self.X,
                            self.y,
                            train=splits[len(run.outs)][0],
                            test=splits[len(run.outs)][1],
                            parameters=run.params,
                            split_progress=(len(run.outs), n_splits),
                            candidate_progress=(run.index, n_trials),
                            **self.fit_kwargs,
                        )
                        for run in pool
                    )
                    for run, out in zip(pool, outs, strict=True):
                        self._advance(run, out, n_splits)
                    pool = [run for run in pool if run.trial.data.is_running]
        except BaseException as exc:
            fail_running(pool, exc)
            raise
        if not runs:
            raise ValueError(
                f"No fits were performed: study {study.name!r} handed out no trials "
                f"(state {study.refresh().state!r})"
            )
        return runs

    def _advance(self, run: CandidateRun, out: dict[str, Any], n_splits: int) -> None:
        """Record one fold of ``run``; report it, or finish the trial after the last fold."""
        run.outs.append(out)
        run.elapsed += float(out["fit_time"]) + float(out["score_time"])
        done = len(run.outs)
        mean = float(np.mean([objective_score(o, self.refit_metric, self.refit) for o in run.outs]))
        if done < n_splits:
            if not math.isfinite(mean):  # a failed fold: no value to compare, keep going
                return
            if not run.trial.report(done, {self.metric: mean}, elapsed_seconds=run.elapsed):
                return
            run.pruned = True
        if math.isfinite(mean):
            run.trial.complete({self.metric: mean})
        else:
            errors = [o["fit_error"] for o in run.outs if o.get("fit_error")]
            reason = last_line(errors[0]) if errors else "the mean test score is not finite"
            run.trial.infeasible(reason)


def objective_score(out: Mapping[str, Any], refit_metric: Any, refit: Any) -> float:
    """The optimized score of one fold: the only one, or the ``refit`` scorer's."""
    scores = out["test_scores"]
    if not isinstance(scores, Mapping):
        return float(scores)
    for key in (refit_metric, refit):
        if isinstance(key, str) and key in scores:
            return float(scores[key])
    raise ValueError(
        "TuneSearchCV optimizes one metric: the scorer returned several "
        f"({sorted(scores)}); set refit to the name of the one to optimize"
    )


def fail_running(pool: Sequence[CandidateRun], exc: BaseException) -> None:
    """After an error (or Ctrl-C), fail the candidates still running (``retry=False``)."""
    reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else _reason(exc)
    for run in pool:
        if run.trial.data.is_running:
            with contextlib.suppress(Exception):  # the original error matters more
                run.trial.fail(reason, retry=False)


def cv_results(
    runs: list[CandidateRun],
    splits: list[tuple[Any, Any]],
    *,
    scoring: Any,
    error_score: Any,
    return_train_score: bool,
    format_results: Callable[[list[dict[str, Any]], int, list[dict[str, Any]]], dict[str, Any]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``cv_results_`` from the runs (pruned runs padded with NaN folds) and the outs.

    ``format_results`` is the search's ``BaseSearchCV._format_results``. Call this
    straight from ``fit``: its warnings point at the caller of ``fit``.
    """
    real = [out for run in runs for out in run.outs]
    _warn_or_raise_about_fit_failures(real, error_score)
    if callable(scoring):
        _insert_error_scores(real, error_score)
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
            if return_train_score:
                skipped["train_scores"] = nan_scores()
            all_out.append(skipped)

    pruned = np.array([run.pruned for run in runs], dtype=bool)
    params = [run.params for run in runs]
    with warnings.catch_warnings():
        if pruned.any():
            warnings.filterwarnings("ignore", message=_NON_FINITE.pattern)
        results: dict[str, Any] = format_results(params, len(splits), all_out)
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


def last_line(text: str, limit: int = 500) -> str:
    """The last non-blank line of a traceback (what a fit error's reason shows)."""
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    line = lines[-1] if lines else "fit failed"
    return line[:limit]


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
