"""The SDK against the real app: each test runs with the sync and the async client,
over a live server on a port and in-process (ASGI) on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import pytest

import tuneforge
from tests.sdk.conftest import PortalTransport, float_study
from tuneforge.api.app import create_app
from tuneforge.api.settings import Settings


def test_create_and_get_by_id_and_name(sdk: Any, name: str) -> None:
    study = sdk.create_study(
        name=name,
        parameters={"x": {"type": "float", "low": -5.0, "high": 5.0}},
        metrics={"loss": "minimize"},
        max_trials=3,
    )
    assert study.name == name and study.state == "active"
    assert study.data.max_trials == 3 and study.data.metrics[0]["goal"] == "minimize"
    assert sdk.get_study(study.id).name == name
    assert sdk.get_study(name).id == study.id
    assert study.id in [s.id for s in sdk.list_studies()]
    assert study.id in [s.id for s in sdk.list_studies(state="active")]


def test_create_from_dict_if_exists_and_duplicate(sdk: Any, name: str) -> None:
    spec = float_study(name)
    first = sdk.create_study(spec)
    assert sdk.create_study(spec, if_exists="return").id == first.id
    with pytest.raises(tuneforge.Conflict) as info:
        sdk.create_study(spec)
    assert info.value.status == 409 and info.value.code == "conflict"
    with pytest.raises(tuneforge.Conflict):
        sdk.create_study(float_study(name, max_trials=5), if_exists="return")


def test_create_from_yaml_and_json_files(sdk: Any, name: str, tmp_path: Any) -> None:
    (tmp_path / "study.yaml").write_text(
        f"name: {name}-y\n"
        "parameters:\n  - {name: depth, type: int, low: 1, high: 4}\n"
        "metrics:\n  - {name: acc, goal: maximize}\n"
    )
    (tmp_path / "study.json").write_text(
        f'{{"name": "{name}-j", "parameters": [{{"name": "c", "type": "categorical",'
        ' "values": ["a", "b"]}], "metrics": [{"name": "acc"}]}'
    )
    assert sdk.create_study_from_file(tmp_path / "study.yaml").data.parameters[0]["type"] == "int"
    assert sdk.create_study_from_file(str(tmp_path / "study.json")).name == f"{name}-j"


def test_suggest_report_complete_best(sdk: Any, name: str) -> None:
    study = sdk.create_study(float_study(name, max_trials=2))
    (trial,) = study.suggest()
    assert trial.state == "active" and trial.number == 0 and -5 <= trial.params["x"] <= 5
    assert trial.data.client_id == sdk.client_id
    assert trial.report(0, loss=3.0) is False
    assert trial.report(1, {"loss": 2.0}, elapsed_seconds=0.5) is False
    trial.complete(loss=1.5)
    assert trial.state == "completed" and trial.values == {"loss": 1.5}
    with study.suggest_one() as second:
        second.complete({"loss": 0.5})
    best = study.best()
    assert best is not None and best.number == second.number and best.values == {"loss": 0.5}
    assert study.refresh().state == "completed"
    assert study.trial_counts["completed"] == 2
    assert study.suggest() == []
    assert [m.step for m in study.trial(0).data.measurements] == [0, 1]


def test_infeasible_and_fail_with_retry(sdk: Any, name: str) -> None:
    study = sdk.create_study(float_study(name))
    first, second = study.suggest(count=2)
    first.infeasible("out of memory")
    assert first.state == "infeasible" and first.data.reason == "out of memory"
    second.fail("node lost", retry=True)
    assert second.state == "failed"
    (again,) = study.suggest()
    assert again.data.retry_of == second.number and again.params == second.params
    again.fail("bad luck", retry=False)
    assert again.refresh().state == "failed"


def test_trials_pages_and_pandas(sdk: Any, name: str) -> None:
    study = sdk.create_study(float_study(name))
    for i, trial in enumerate(study.suggest(count=7)):
        if i < 5:
            trial.complete(loss=float(i))
    listed = list(study.trials(page_size=3))
    assert [t.number for t in listed] == list(range(7))
    assert [t.state for t in listed] == ["completed"] * 5 + ["active"] * 2
    assert listed[4].values == {"loss": 4.0} and "x" in listed[4].params
    assert [t.number for t in study.trials(state="active", page_size=1)] == [5, 6]
    frame = study.to_pandas()
    assert list(frame["number"]) == list(range(7))
    assert {"state", "params_x", "values_loss", "duration_seconds"} <= set(frame.columns)
    assert frame["values_loss"].iloc[2] == 2.0
    for trial in study.trials(state="active"):
        trial.fail("done", retry=False)


def test_errors_map_to_classes(sdk: Any, name: str) -> None:
    with pytest.raises(tuneforge.NotFound) as missing:
        sdk.get_study(10**9)
    assert missing.value.status == 404 and missing.value.code == "not_found"
    with pytest.raises(tuneforge.NotFound):
        sdk.get_study(f"{name}-nobody")
    with pytest.raises(tuneforge.InvalidSpec) as invalid:
        sdk.create_study(
            name=name,
            parameters=[{"name": "lr", "type": "float", "low": 0.0, "high": 1.0, "scale": "log"}],
            metrics=[{"name": "acc"}],
        )
    assert invalid.value.status == 422 and invalid.value.field == "parameters[0].low"
    study = sdk.create_study(float_study(name))
    with pytest.raises(tuneforge.NotFound):
        study.trial(99)
    (trial,) = study.suggest()
    with pytest.raises(tuneforge.InvalidSpec):
        trial.complete(accuracy=1.0)  # not a metric of the study
    trial.complete(loss=1.0)
    with pytest.raises(tuneforge.Conflict) as conflict:
        trial.complete(loss=2.0)
    assert "already completed" in conflict.value.message and conflict.value.attempts == 1
    with pytest.raises(tuneforge.PayloadTooLarge):
        sdk.create_study(float_study(f"{name}-big", metadata={"blob": "x" * 5_000_000}))
    assert isinstance(conflict.value, tuneforge.TuneforgeError)


def test_with_block_fails_on_error_and_prunes(sdk: Any, name: str) -> None:
    rule = {"rule": "median", "n_startup_trials": 1, "min_peers": 1}
    study = sdk.create_study(float_study(name, early_stopping=rule))
    with study.suggest_one() as good:
        good.report(0, loss=1.0)
        good.complete(loss=1.0)
    with pytest.raises(RuntimeError, match="boom"), study.suggest_one() as broken:
        raise RuntimeError("boom")
    assert broken.state == "failed" and broken.data.reason == "RuntimeError: boom"
    with study.suggest_one() as pruned:
        assert pruned.report(0, loss=9.0) is True and pruned.should_stop
        raise tuneforge.TrialPruned()
    assert pruned.state == "pruned" and pruned.values == {"loss": 9.0}
    assert [t.state for t in study.trials()] == ["completed", "failed", "pruned"]


def test_pause_resume_delete(sdk: Any, name: str) -> None:
    study = sdk.create_study(float_study(name))
    assert study.pause().state == "paused"
    assert study.suggest() == []
    with pytest.raises(tuneforge.NoTrialAvailable) as info:
        study.suggest_one(timeout=0.3)  # a paused study is waited on, until the timeout
    assert info.value.study_state == "paused"
    assert study.resume().state == "active"
    (trial,) = study.suggest()
    trial.complete(loss=0.0)
    study.delete()
    with pytest.raises(tuneforge.NotFound):
        sdk.get_study(study.id)


def test_heartbeats_keep_a_short_lease_alive(sdk: Any, name: str) -> None:
    # a 2 s lease, beaten every 2/3 s: a beat stalled by a busy machine (the suite shares
    # 2 cores with servers and workers; a 1 s lease once ran out in CI elsewhere) still
    # lands in time
    study = sdk.create_study(float_study(name, retries={"max_retries": 0, "lease_seconds": 2.0}))
    with study.suggest_one() as trial:
        time.sleep(5.0)  # two and a half leases: only heartbeats keep the trial alive
        trial.complete(loss=1.0)
    assert trial.state == "completed"


def test_a_silent_trial_loses_its_lease(sdk: Any, name: str) -> None:
    study = sdk.create_study(float_study(name, retries={"max_retries": 0, "lease_seconds": 0.2}))
    (trial,) = study.suggest()
    trial._stop_heartbeat()  # as if the worker froze
    time.sleep(0.4)
    with pytest.raises(tuneforge.Conflict):
        trial.complete(loss=1.0)
    assert trial.refresh().state == "failed" and trial.data.reason.startswith("lease expired")


def test_managed_study_verbs(pg_url: str, portal: Any, name: str) -> None:
    """run / evaluate / store_evaluation, in-process (no reconciler sends Celery tasks)."""
    app = create_app(Settings(db_url=pg_url))
    objective = {
        "kind": "sklearn",
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "dataset": {"source": "sklearn", "name": "iris"},
        "scoring": "accuracy",
        "test_size": 0.2,
    }
    with tuneforge.Client("http://sdk.test", transport=PortalTransport(app, portal)) as client:
        study = client.create_study(
            name=name,
            parameters={"n_estimators": {"type": "int", "low": 2, "high": 5}},
            metrics={"accuracy": "maximize"},
            max_trials=2,
            objective=objective,
        )
        assert study.run().state == "active"
        with pytest.raises(tuneforge.Conflict):
            study.evaluate()  # nothing completed yet
        (trial,) = study.suggest()
        trial.complete(accuracy=0.9)
        assert study.evaluate().data.evaluation["state"] == "requested"
        result = {"trial_number": 0, "params": trial.params, "cv_score": 0.9, "test_score": 0.8}
        assert study.store_evaluation(result).data.evaluation["state"] == "done"
        study.delete()
