"""MLflow tracking for tuneforge studies (``pip install 'tuneforge[mlflow]'``).

Each study is a parent run in an MLflow experiment (named after the study unless
given), and each finished trial a run nested under it (``mlflow.parentRunId``)
with the trial's parameters as params, its final values as metrics, every
intermediate measurement as a metric at its step, and tags: the trial's number,
state, reason, client and its metadata (``tuneforge.metadata.<key>``). Pruned
trials end ``KILLED``, failed and infeasible ones ``FAILED``. The parent run
carries the study's settings, its best values and its held-out evaluation.

Two ways in, one logger:

- :class:`MLflowCallback` for ``study.optimize(..., callbacks=[MLflowCallback()])``
  logs each trial as it finishes, as Optuna's ``MLflowCallback`` does;
- :func:`sync_study` (and ``tuneforge mlflow-sync STUDY``) logs every finished trial
  of any study afterwards: managed studies run by Celery workers, or studies your
  own workers drive. It is idempotent: trials already logged (found by their tags)
  are skipped, so it can run again, e.g. from cron, to add new trials.

Trials are logged once finished; finished trials never change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .models import StudyData, TrialData

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from .handles import Study, Trial

TAG = "tuneforge"
FINISHED = ("completed", "pruned", "infeasible", "failed")
RUN_STATUS = {
    "completed": "FINISHED",
    "pruned": "KILLED",
    "infeasible": "FAILED",
    "failed": "FAILED",
}
#: MLflow's limit on a tag value.
MAX_TAG = 5000
#: Params and metrics per ``log_batch`` call (MLflow's limits: 100 params, 1000 items).
PARAM_BATCH = 100
METRIC_BATCH = 1000


@dataclass(frozen=True)
class SyncResult:
    """What one sync logged: the parent run, trials logged now and those found already."""

    experiment_id: str
    parent_run_id: str
    logged: int
    already: int


def _client(tracking_uri: str | None) -> MlflowClient:
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise ImportError("MLflow tracking needs mlflow: pip install 'tuneforge[mlflow]'") from None
    return MlflowClient(tracking_uri=tracking_uri)


class MLflowLogger:
    """Logs a study and its finished trials to one MLflow tracking server or store.

    ``tracking_uri`` defaults to MLflow's own (``MLFLOW_TRACKING_URI``);
    ``experiment_name`` to the study's name; ``tags`` are added to every run.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.client = _client(tracking_uri)
        self.experiment_name = experiment_name
        self.tags = dict(tags or {})
        self._parents: dict[int, tuple[str, str]] = {}
        self._logged: dict[int, set[int]] = {}

    def sync(self, study: Study) -> SyncResult:
        """Log every finished trial of ``study`` not logged yet, and refresh the parent run."""
        study.refresh()
        experiment_id, parent = self.parent_run(study.data)
        done = self._logged_numbers(study.id, experiment_id)
        already = logged = 0
        for trial in study.trials():
            if trial.state not in FINISHED:
                continue
            if trial.number in done:
                already += 1
                continue
            self._log_trial(study.data, trial.data, experiment_id, parent)
            done.add(trial.number)
            logged += 1
        self._log_study(study.data, parent)
        return SyncResult(experiment_id, parent, logged, already)

    def log_trial(self, study: Study, trial: Trial | TrialData) -> bool:
        """Log one finished trial (False when it is not finished or was logged before)."""
        data = trial if isinstance(trial, TrialData) else trial.data
        experiment_id, parent = self.parent_run(study.data)
        done = self._logged_numbers(study.id, experiment_id)
        if data.state not in FINISHED or data.number in done:
            return False
        self._log_trial(study.data, data, experiment_id, parent)
        done.add(data.number)
        return True

    # ---- runs -----------------------------------------------------------------------
    def parent_run(self, study: StudyData) -> tuple[str, str]:
        """The study's experiment id and parent run id, created on first use."""
        if study.id in self._parents:
            return self._parents[study.id]
        experiment_id = self._experiment(self.experiment_name or study.name)
        found = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG}.study_id` = '{study.id}' and tags.`{TAG}.kind` = 'study'",
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
        else:
            tags = {**self.tags, **_study_tags(study)}
            run_id = self.client.create_run(
                experiment_id, tags=tags, run_name=study.name
            ).info.run_id
        self._parents[study.id] = (experiment_id, run_id)
        return experiment_id, run_id

    def _experiment(self, name: str) -> str:
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return str(existing.experiment_id)
        return str(self.client.create_experiment(name))

    def _logged_numbers(self, study_id: int, experiment_id: str) -> set[int]:
        if study_id not in self._logged:
            numbers: set[int] = set()
            token = None
            while True:
                page = self.client.search_runs(
                    [experiment_id],
                    filter_string=f"tags.`{TAG}.study_id` = '{study_id}' and tags.`{TAG}.kind` = 'trial'",
                    max_results=1000,
                    page_token=token,
                )
                numbers.update(int(r.data.tags[f"{TAG}.trial_number"]) for r in page)
                token = page.token
                if not token:
                    break
            self._logged[study_id] = numbers
        return self._logged[study_id]

    def _log_trial(
        self, study: StudyData, trial: TrialData, experiment_id: str, parent: str
    ) -> None:
        from mlflow.entities import Metric, Param

        tags = {**self.tags, **_trial_tags(study, trial), "mlflow.parentRunId": parent}
        run = self.client.create_run(
            experiment_id,
            start_time=_ms(trial.started_at or trial.created_at),
            tags=tags,
            run_name=f"trial-{trial.number}",
        )
        run_id = run.info.run_id
        params = [Param(k, _text(v)) for k, v in trial.params.items()]
        end = _ms(trial.completed_at or trial.updated_at) or 0
        # Measurements before the final values: MLflow shows the value of the largest step,
        # then the latest time, so the final values (at the last step, at ``end``) win.
        before = end - 1
        metrics = [
            Metric(k, float(v), min(_when(trial, m.elapsed_seconds) or before, before), m.step)
            for m in trial.measurements
            for k, v in m.values.items()
        ]
        last = max((m.step for m in trial.measurements), default=0)
        metrics += [Metric(k, float(v), end, last) for k, v in (trial.values or {}).items()]
        _log_batch(self.client, run_id, metrics, params)
        self.client.set_terminated(run_id, RUN_STATUS[trial.state], end_time=end or None)

    def _log_study(self, study: StudyData, run_id: str) -> None:
        from mlflow.entities import Metric, Param

        params = [
            Param("algorithm", study.algorithm),
            Param("early_stopping", _text(study.early_stopping.get("rule", "none"))),
            Param("seed", str(study.seed)),
            Param("max_trials", _text(study.max_trials)),
        ]
        now = _ms(study.updated_at) or 0
        metrics = []
        if study.best_trial is not None and study.best_trial.values:
            metrics += [
                Metric(f"best_{k}", float(v), now, 0) for k, v in study.best_trial.values.items()
            ]
        for key in ("cv_score", "test_score"):
            value = (study.evaluation or {}).get(key)
            if isinstance(value, int | float):
                metrics.append(Metric(key, float(value), now, 0))
        existing = self.client.get_run(run_id).data.params
        params = [p for p in params if p.key not in existing]  # params are write-once
        _log_batch(self.client, run_id, metrics, params)
        for key, value in _study_tags(study).items():
            self.client.set_tag(run_id, key, value)


class MLflowCallback:
    """``study.optimize(objective, callbacks=[MLflowCallback()])``: each trial an MLflow run,
    nested under the study's parent run, logged as soon as it finishes."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.logger = MLflowLogger(tracking_uri, experiment_name, tags=tags)

    def __call__(self, study: Study, trial: Trial) -> None:
        self.logger.log_trial(study, trial)


def sync_study(
    study: Study, tracking_uri: str | None = None, experiment_name: str | None = None
) -> SyncResult:
    """Log every finished trial of ``study`` not logged yet (see the module docstring)."""
    return MLflowLogger(tracking_uri, experiment_name).sync(study)


def _study_tags(study: StudyData) -> dict[str, str]:
    tags = {
        f"{TAG}.kind": "study",
        f"{TAG}.study_id": str(study.id),
        f"{TAG}.study_name": study.name,
        f"{TAG}.state": study.state,
        f"{TAG}.trials": str(sum(study.trial_counts.values())),
    }
    if study.description:
        tags["mlflow.note.content"] = study.description[:MAX_TAG]
    return tags


def _trial_tags(study: StudyData, trial: TrialData) -> dict[str, str]:
    tags = {
        f"{TAG}.kind": "trial",
        f"{TAG}.study_id": str(study.id),
        f"{TAG}.study_name": study.name,
        f"{TAG}.trial_number": str(trial.number),
        f"{TAG}.state": trial.state,
    }
    for key in ("reason", "client_id", "retry_of"):
        value = getattr(trial, key)
        if value is not None:
            tags[f"{TAG}.{key}"] = _text(value)
    for key, value in _flatten(trial.metadata).items():
        tags[f"{TAG}.metadata.{key}"] = _text(value)
    return tags


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _log_batch(client: MlflowClient, run_id: str, metrics: list[Any], params: list[Any]) -> None:
    for start in range(0, len(params), PARAM_BATCH):
        client.log_batch(run_id, params=params[start : start + PARAM_BATCH])
    for start in range(0, len(metrics), METRIC_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + METRIC_BATCH])


def _text(value: Any) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_TAG]


def _ms(when: datetime | None) -> int | None:
    return int(when.timestamp() * 1000) if when is not None else None


def _when(trial: TrialData, elapsed_seconds: float | None) -> int | None:
    """A measurement's time: the trial's start plus the seconds the worker reported."""
    start = _ms(trial.started_at)
    if start is None or elapsed_seconds is None:
        return None
    return start + int(elapsed_seconds * 1000)
