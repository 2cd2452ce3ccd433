"""MLflow tracking against a local MLflow file store (a temporary directory): the parent run
per study, one nested run per finished trial with params, per-step metrics and tags, logged by
``study.optimize(callbacks=[MLflowCallback()])``, by ``sync_study`` and by
``tuneforge mlflow-sync``.

mlflow-skinny is in the dev extra, so CI has it; elsewhere these tests skip, saying why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tuneforge
from tests.conftest import IN_CI, LiveServer
from tests.sdk import objectives
from tests.sdk.conftest import clean_env, float_study

try:
    import mlflow
    from mlflow import MlflowClient
except ImportError as exc:  # pragma: no cover - depends on the environment
    if IN_CI:
        raise
    pytest.skip(
        f"mlflow is not installed ({exc}): pip install 'tuneforge[mlflow]'", allow_module_level=True
    )

from tuneforge.mlflow import MLflowCallback, sync_study


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A file store; MLflow 3 asks for it to be allowed explicitly."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return f"file:{tmp_path / 'mlruns'}"


@pytest.fixture
def client(sdk_live: LiveServer) -> Any:
    with tuneforge.Client(sdk_live.url) as c:
        yield c


def runs(store: str, experiment: str) -> tuple[Any, list[Any]]:
    """The parent run and the trial runs of an experiment."""
    tracking = MlflowClient(tracking_uri=store)
    exp = tracking.get_experiment_by_name(experiment)
    assert exp is not None
    found = tracking.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in found if r.data.tags.get("tuneforge.kind") == "study"]
    assert len(parents) == 1
    trials = [r for r in found if r.data.tags.get("tuneforge.kind") == "trial"]
    return parents[0], sorted(trials, key=lambda r: int(r.data.tags["tuneforge.trial_number"]))


def test_callback_logs_each_trial_as_a_nested_run_with_step_metrics(
    client: Any, name: str, store: str
) -> None:
    rule = {"rule": "median", "n_startup_trials": 2, "min_peers": 1}
    study = client.create_study(float_study(name, early_stopping=rule, seed=3))
    result = study.optimize(
        objectives.reporting, n_trials=8, progress=False, callbacks=[MLflowCallback(store)]
    )
    assert result.n_trials == 8 and result.n_pruned >= 1
    parent, trial_runs = runs(store, name)
    assert parent.data.tags["tuneforge.study_id"] == str(study.id)
    trials = {t.number: t for t in study.trials()}
    assert [int(r.data.tags["tuneforge.trial_number"]) for r in trial_runs] == sorted(trials)
    tracking = MlflowClient(tracking_uri=store)
    for run in trial_runs:
        trial = trials[int(run.data.tags["tuneforge.trial_number"])]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.run_name == f"trial-{trial.number}"
        assert run.data.params == {"x": str(trial.params["x"])}
        assert run.data.metrics["loss"] == trial.values["loss"]
        assert run.data.tags["tuneforge.state"] == trial.state
        assert run.info.status == {"completed": "FINISHED", "pruned": "KILLED"}[trial.state]
        history = tracking.get_metric_history(run.info.run_id, "loss")
        steps = sorted(m.step for m in history)
        measured = [m.step for m in trial.data.measurements]
        assert set(steps) == set(measured)  # the final value is logged at the last step too
        assert len(history) == len(measured) + 1


def test_sync_logs_finished_trials_once_with_tags_and_the_study_summary(
    client: Any, name: str, store: str
) -> None:
    study = client.create_study(float_study(name, metrics=[{"name": "loss", "goal": "minimize"}]))
    for x in (0.5, 1.5, -2.0):
        study.add_trial(
            {"x": x}, {"loss": (x - 1) ** 2}, metadata={"seed": 7, "env": {"host": "h1"}}
        )
    running = study.suggest(1)[0]
    first = sync_study(study, store)
    assert (first.logged, first.already) == (3, 0)
    parent, trial_runs = runs(store, name)
    assert first.parent_run_id == parent.info.run_id
    assert parent.data.metrics["best_loss"] == 0.25
    assert parent.data.params["algorithm"] == "random"
    assert len(trial_runs) == 3  # the running trial waits until it finishes
    tags = trial_runs[0].data.tags
    assert tags["tuneforge.metadata.seed"] == "7" and tags["tuneforge.metadata.env.host"] == "h1"
    assert tags["tuneforge.study_name"] == name

    running.complete(loss=9.0)
    again = sync_study(study, store)
    assert (again.logged, again.already, again.parent_run_id) == (1, 3, first.parent_run_id)
    assert len(runs(store, name)[1]) == 4


def test_cli_mlflow_sync_to_a_file_store(
    client: Any, name: str, tmp_path: Path, sdk_live: LiveServer
) -> None:
    study = client.create_study(float_study(name))
    study.add_trial({"x": 0.0}, {"loss": 1.0})
    uri = f"file:{tmp_path / 'cli-runs'}"
    env = {k: v for k, v in clean_env().items() if k != "MLFLOW_ALLOW_FILE_STORE"}
    cmd = [sys.executable, "-m", "tuneforge.cli", "mlflow-sync", name, "--tracking-uri", uri]
    cmd += ["--experiment", "from-cli", "--url", sdk_live.url]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"study {study.id} {name!r}: logged 1 trial run(s), 0 already there" in done.stdout
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        _, trial_runs = runs(uri, "from-cli")
    assert len(trial_runs) == 1 and mlflow.__version__
