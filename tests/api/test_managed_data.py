"""A managed study's data is checked when the study is created, and a managed study
whose first trials all fail with one error stops and says why; through the real app
on SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

API = "/api/v1"


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.integers(0, 5, size=n),
            "flag": rng.integers(0, 2, size=n).astype(bool),
            "colour": rng.choice(["red", "green", "blue"], size=n),
            "price": rng.normal(10, 2, size=n),
            "label": rng.choice(["yes", "no"], size=n),
        }
    )


@pytest.fixture
def csv_path(tmp_path: Path, frame: pd.DataFrame) -> str:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return str(path)


def managed_spec(
    dataset: dict[str, Any], estimator: str = "sklearn.svm.SVC", **overrides: Any
) -> dict[str, Any]:
    parameter = "C" if estimator.startswith("sklearn.svm") else "alpha"
    spec: dict[str, Any] = {
        "name": "data-study",
        "parameters": [{"name": parameter, "type": "float", "low": 0.01, "high": 10}],
        "metrics": [{"name": "score", "goal": "maximize"}],
        "max_trials": 6,
        "objective": {
            "kind": "sklearn",
            "estimator": estimator,
            "dataset": dataset,
            "cv": {"type": "kfold", "n_splits": 3},
        },
    }
    spec.update(overrides)
    return spec


def csv(path: str, **fields: Any) -> dict[str, Any]:
    return {"source": "csv", "path": path, "target": "label", **fields}


def rejected(client: TestClient, spec: dict[str, Any], field: str) -> str:
    """POST the spec; assert a 422 naming ``field`` and that nothing was stored."""
    r = client.post(f"{API}/studies", json=spec)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_spec"
    assert field in error["message"] or (error.get("details") or {}).get("field") == field, error
    assert client.get(f"{API}/studies").json()["studies"] == []
    return str(error["message"])


def test_a_valid_csv_study_is_created(client: TestClient, csv_path: str) -> None:
    spec = managed_spec(csv(csv_path, features=["a", "b", "flag"]))
    r = client.post(f"{API}/studies", json=spec)
    assert r.status_code == 201, r.text
    assert r.json()["objective"]["dataset"]["features"] == ["a", "b", "flag"]


def test_a_missing_file_names_the_path(client: TestClient, tmp_path: Path) -> None:
    message = rejected(
        client, managed_spec(csv(str(tmp_path / "nope.csv"))), "objective.dataset.path"
    )
    assert "no such file" in message


def test_an_empty_file_names_the_path(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    message = rejected(
        client, managed_spec(csv(str(tmp_path / "empty.csv"))), "objective.dataset.path"
    )
    assert "empty" in message


def test_a_missing_target_column(client: TestClient, csv_path: str) -> None:
    spec = managed_spec({"source": "csv", "path": csv_path, "target": "Label"})
    message = rejected(client, spec, "objective.dataset.target")
    assert "'Label'" in message


def test_a_missing_groups_column(client: TestClient, csv_path: str) -> None:
    spec = managed_spec(csv(csv_path, groups="site", features=["a"]))
    rejected(client, spec, "objective.dataset.groups")


def test_a_missing_feature_column(client: TestClient, csv_path: str) -> None:
    message = rejected(
        client, managed_spec(csv(csv_path, features=["a", "size"])), "objective.dataset.features"
    )
    assert "'size'" in message and "'a'" not in message


def test_a_string_feature_column_is_named(client: TestClient, csv_path: str) -> None:
    # no features listed: every column but the target is a feature, 'colour' is text
    message = rejected(client, managed_spec(csv(csv_path)), "objective.dataset.features")
    assert "'colour'" in message and "not numeric" in message
    assert "'a'" not in message and "red" not in message  # names the column, not its values


def test_a_regressor_with_a_string_target(client: TestClient, csv_path: str) -> None:
    spec = managed_spec(csv(csv_path, features=["a", "b"]), estimator="sklearn.linear_model.Ridge")
    message = rejected(client, spec, "objective.dataset.target")
    assert "regressor" in message


def test_a_regressor_with_a_numeric_target_is_created(client: TestClient, csv_path: str) -> None:
    dataset = {"source": "csv", "path": csv_path, "target": "price", "features": ["a", "b"]}
    spec = managed_spec(dataset, estimator="sklearn.linear_model.Ridge")
    assert client.post(f"{API}/studies", json=spec).status_code == 201


def test_missing_values_the_estimator_cannot_take(
    client: TestClient, tmp_path: Path, frame: pd.DataFrame
) -> None:
    frame.loc[3, "a"] = np.nan
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)
    spec = managed_spec(csv(str(path), features=["a", "b"]))
    message = rejected(client, spec, "objective.dataset.features")
    assert "'a'" in message and "missing" in message
    # an estimator that handles missing values takes the same file
    hgb = managed_spec(
        csv(str(path), features=["a", "b"]),
        estimator="sklearn.ensemble.HistGradientBoostingClassifier",
        parameters=[{"name": "learning_rate", "type": "float", "low": 0.01, "high": 0.5}],
    )
    assert client.post(f"{API}/studies", json=hgb).status_code == 201


def test_parquet_works(client: TestClient, tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    good = managed_spec({**csv(str(path), features=["a", "flag"]), "source": "parquet"})
    bad = managed_spec({**csv(str(path)), "source": "parquet"}, name="bad")
    rejected(client, bad, "objective.dataset.features")
    assert client.post(f"{API}/studies", json=good).status_code == 201


def test_a_file_that_is_not_parquet(client: TestClient, csv_path: str) -> None:
    spec = managed_spec({**csv(csv_path, features=["a"]), "source": "parquet"})
    rejected(client, spec, "objective.dataset.path")


def test_nested_cv_checks_the_data_too(client: TestClient, csv_path: str) -> None:
    body = {"study": managed_spec(csv(csv_path)), "outer_splits": 3, "run": False}
    r = client.post(f"{API}/nested-cv", json=body)
    assert r.status_code == 422, r.text
    assert "study.objective.dataset.features" in r.text
    assert client.get(f"{API}/studies").json()["studies"] == []


# --- the first trials all fail alike ---------------------------------------------------


def iris_study(client: TestClient, **overrides: Any) -> int:
    spec = managed_spec({"source": "sklearn", "name": "iris"}, name="iris", **overrides)
    r = client.post(f"{API}/studies", json=spec)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def next_trial(client: TestClient, sid: int) -> int:
    r = client.post(f"{API}/studies/{sid}/trials/suggest", json={"count": 1})
    assert r.status_code == 200, r.text
    (trial,) = r.json()["trials"]
    return int(trial["number"])


def infeasible(client: TestClient, sid: int, reason: str) -> None:
    n = next_trial(client, sid)
    r = client.post(
        f"{API}/studies/{sid}/trials/{n}/complete", json={"infeasible": True, "reason": reason}
    )
    assert r.status_code == 200, r.text


def fail(client: TestClient, sid: int, reason: str) -> None:
    n = next_trial(client, sid)
    r = client.post(f"{API}/studies/{sid}/trials/{n}/fail", json={"reason": reason, "retry": False})
    assert r.status_code == 200, r.text


def study(client: TestClient, sid: int) -> dict[str, Any]:
    return dict(client.get(f"{API}/studies/{sid}").json())


ERROR = "ValueError: could not convert string to float: 'red'"


def test_three_trials_failing_alike_stop_the_study(client: TestClient) -> None:
    sid = iris_study(client)
    infeasible(client, sid, ERROR)
    fail(client, sid, ERROR)
    assert study(client, sid)["state"] == "active"
    infeasible(client, sid, ERROR)
    data = study(client, sid)
    assert data["state"] == "completed"
    assert data["completion_reason"].startswith("same_error: the first 3 trials all failed")
    assert data["completion_reason"].endswith(ERROR)
    r = client.post(f"{API}/studies/{sid}/trials/suggest", json={"count": 1})
    assert r.json()["trials"] == [] and r.json()["study_state"] == "completed"
    listed = client.get(f"{API}/studies").json()["studies"][0]
    assert listed["completion_reason"] == data["completion_reason"]


def test_numbers_do_not_make_errors_different(client: TestClient) -> None:
    sid = iris_study(client)
    for n in (3, 17, 250):
        fail(client, sid, f"MemoryError: cannot allocate {n}.5 MiB")
    assert study(client, sid)["state"] == "completed"


def test_different_errors_keep_the_study_active(client: TestClient) -> None:
    sid = iris_study(client)
    infeasible(client, sid, ERROR)
    infeasible(client, sid, ERROR)
    infeasible(client, sid, "ValueError: C must be positive")
    infeasible(client, sid, ERROR)  # the rule looks at the first three only
    data = study(client, sid)
    assert data["state"] == "active" and data["completion_reason"] is None


def test_a_completed_trial_keeps_the_study_active(client: TestClient) -> None:
    sid = iris_study(client)
    n = next_trial(client, sid)
    r = client.post(f"{API}/studies/{sid}/trials/{n}/complete", json={"values": {"score": 0.9}})
    assert r.status_code == 200
    for _ in range(3):
        infeasible(client, sid, ERROR)
    assert study(client, sid)["state"] == "active"


def test_studies_without_a_managed_objective_are_not_stopped(client: TestClient) -> None:
    spec = managed_spec({"source": "sklearn", "name": "iris"}, name="plain", objective=None)
    sid = int(client.post(f"{API}/studies", json=spec).json()["id"])
    for _ in range(3):
        infeasible(client, sid, "OOM at this width")
    assert study(client, sid)["state"] == "active"


def test_a_smaller_budget_needs_fewer_trials(client: TestClient) -> None:
    sid = iris_study(client, max_trials=2)
    fail(client, sid, ERROR)
    fail(client, sid, ERROR)
    data = study(client, sid)
    assert data["state"] == "completed"
    assert data["completion_reason"].startswith("same_error: the first 2 trials")


def test_a_stopped_study_can_be_reopened(client: TestClient) -> None:
    sid = iris_study(client)
    for _ in range(3):
        fail(client, sid, ERROR)
    assert study(client, sid)["state"] == "completed"
    r = client.post(f"{API}/studies/{sid}/run")
    assert r.status_code == 409 and "PATCH state: active" in r.json()["error"]["message"]
    r = client.patch(f"{API}/studies/{sid}", json={"state": "active"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "active" and r.json()["completion_reason"] is None
    fail(client, sid, ERROR)  # the fourth failure does not stop it again
    n = next_trial(client, sid)
    r = client.post(f"{API}/studies/{sid}/trials/{n}/complete", json={"values": {"score": 0.9}})
    assert r.status_code == 200
    assert study(client, sid)["state"] == "active"


def test_parquet_without_pyarrow_names_the_source(
    client: TestClient, tmp_path: Path, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    monkeypatch.setitem(sys.modules, "pyarrow.dataset", None)  # as if pyarrow were absent
    spec = managed_spec({**csv(str(path), features=["a"]), "source": "parquet"})
    message = rejected(client, spec, "objective.dataset.source")
    assert "pip install" in message


def test_a_large_csv_is_checked_on_a_sample(client: TestClient, tmp_path: Path) -> None:
    from tuneforge.api.services.datasets import SAMPLE_ROWS

    n = SAMPLE_ROWS + 50
    frame = pd.DataFrame({"a": np.arange(n, dtype=float), "label": np.arange(n) % 2})
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    with path.open("a") as f:
        f.write("not-a-number,1\n")  # past the sample: the workers' full check finds it
    spec = managed_spec(csv(str(path)))
    assert client.post(f"{API}/studies", json=spec).status_code == 201
