"""Thin, idempotent Celery tasks: they pass ids, speak to the server only through the SDK,
and leave every decision (which trial, whether to stop) to the server."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

import tuneforge
from tuneforge.errors import Conflict, ConnectionFailed, RateLimited, ServerError

from ..core.errors import InvalidSpec
from ..core.policy import ObjectivePolicy
from ..core.scoring import scorers_for
from ..core.trials import task_client_id
from .objective import ConfigurationError, StudyContext, evaluate, problem_for, rung_plan
from .objectives.fetch import DatasetCache, localized
from .objectives.sklearn_cv import holdout_score
from .settings import local_policy

log = logging.getLogger("tuneforge.worker")
TRANSIENT = (ConnectionFailed, ServerError, RateLimited)


def _client(app: Celery, task_id: str | None) -> tuneforge.Client:
    settings = app.conf.tuneforge_settings
    client_id = task_client_id(task_id) if task_id else None
    return tuneforge.Client(settings.server_url, settings.api_key, client_id=client_id)


def _objective_metric(study: tuneforge.Study) -> str:
    return next(m["name"] for m in study.data.metrics if m.get("role", "objective") == "objective")


def run_one_trial(
    study: tuneforge.Study,
    blas_threads: int,
    policy: ObjectivePolicy,
    worker: str | None = None,
    datasets: DatasetCache | None = None,
) -> str:
    """Suggest one trial for this task's client id (a promoted paused trial comes first),
    evaluate it if this worker's ``policy`` allows what the objective names, finish it
    with its reproducibility record; returns its state. ``worker`` names this worker in a
    rung checkpoint's record; uploaded data comes from ``datasets`` (kept by fingerprint)."""
    from threadpoolctl import threadpool_limits

    trials = study.suggest(1)
    if not trials:
        return "no-work"
    trial = trials[0]
    objective = study.data.objective
    if objective is None:
        trial.fail("the study has no managed objective", retry=False)
        return "failed"
    try:
        with threadpool_limits(limits=blas_threads):
            context = StudyContext.of(study, worker)
            outcome = evaluate(
                trial, objective, _objective_metric(study), policy, context, datasets
            )
    except ConfigurationError as exc:
        return trial.infeasible(str(exc)).state
    except SoftTimeLimitExceeded:
        return trial.infeasible("the trial exceeded the task's time limit").state
    except TRANSIENT:
        raise
    except Exception as exc:  # a bug in user code: record it, do not retry the same params
        log.exception("trial %s of study %s raised", trial.number, study.id)
        return trial.fail(f"{type(exc).__name__}: {exc}", retry=False).state
    return trial.complete(outcome.values, metadata=outcome.metadata).state


def evaluate_best(
    study: tuneforge.Study,
    policy: ObjectivePolicy | None = None,
    datasets: DatasetCache | None = None,
) -> dict[str, Any]:
    """Refit the best configuration on the tuning part; score it once on the held-out rows.

    ``policy`` is the worker's (Celery tasks pass theirs); a local run's
    (:func:`~.settings.local_policy`) when not given. ``datasets`` fetches uploaded data
    (a cache over ``study``'s client when not given).
    """
    policy = policy or local_policy()
    datasets = datasets or DatasetCache(None, study.client.download_dataset)
    best = study.best()
    objective = study.data.objective
    if best is None or objective is None:
        return {"state": "failed", "error": "no completed trial or no managed objective"}
    metric = _objective_metric(study)
    try:
        params = refit_params(study, objective, best.params, policy)
        policy.check_run(objective, params)
        objective = localized(objective, datasets)
        problem = problem_for(objective, policy)
        test = holdout_score(objective, params, problem, policy, metric)
    except InvalidSpec as exc:
        return {"state": "failed", "error": str(exc)}
    except Exception as exc:
        return {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return {
        "trial_number": best.number,
        "params": params,
        "metric": metric,
        "scoring": scorers_for(objective.get("scoring"), metric)[metric],
        "cv_score": (best.values or {}).get(metric),
        "test_score": test,
    }


def refit_params(
    study: tuneforge.Study,
    objective: Mapping[str, Any],
    params: Mapping[str, Any],
    policy: ObjectivePolicy,
) -> dict[str, Any]:
    """The best trial's parameters for the held-out refit: with the fidelity's full
    resource when it is an estimator option (a trial trained by rungs of ``n_estimators``
    is refit with ``fidelity.max`` trees, not the estimator's default)."""
    out = dict(params)
    if objective.get("kind") != "sklearn":
        return out
    plan = rung_plan(objective, StudyContext.of(study), policy)
    if plan is not None and plan.estimator_param:
        out[plan.name] = plan.high
    return out


def register_tasks(app: Celery) -> None:
    """Define ``tuneforge.run_trial`` and ``tuneforge.evaluate_study`` on ``app``."""
    settings = app.conf.tuneforge_settings
    policy = settings.objective_policy()
    retry = {
        "autoretry_for": TRANSIENT,
        "retry_backoff": True,
        "retry_backoff_max": 60,
        "retry_jitter": True,
        "max_retries": settings.task_max_retries,
    }

    @app.task(name="tuneforge.run_trial", bind=True, **retry)
    def run_trial(task: Task, study_id: int) -> str:
        with _client(app, task.request.id) as client:
            datasets = DatasetCache(settings.dataset_cache_dir, client.download_dataset)
            study = client.get_study(study_id)
            worker = task.request.hostname
            return run_one_trial(study, settings.blas_threads, policy, worker, datasets)

    @app.task(name="tuneforge.evaluate_study", bind=True, **retry)
    def evaluate_study(task: Task, study_id: int) -> str:
        with _client(app, task.request.id) as client:
            study = client.get_study(study_id)
            if (study.data.evaluation or {}).get("state") != "requested":
                return "not-requested"  # done already (a redelivered task scores nothing)
            datasets = DatasetCache(settings.dataset_cache_dir, client.download_dataset)
            result = evaluate_best(study, policy, datasets)
            try:
                study.store_evaluation(result)
            except Conflict:
                return "already-evaluated"
            return str(result.get("state", "done"))
