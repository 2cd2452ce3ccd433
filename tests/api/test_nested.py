"""Nested cross-validation through the API: one inner study per outer fold."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

API = "/api/v1"


def spec(**extra: Any) -> dict[str, Any]:
    return {
        "name": "svc-nested",
        "parameters": [{"name": "C", "type": "float", "low": 0.01, "high": 100, "scale": "log"}],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "max_trials": 4,
        "objective": {
            "kind": "sklearn",
            "estimator": "sklearn.svm.SVC",
            "dataset": {"source": "sklearn", "name": "iris"},
            "cv": {"type": "stratified_kfold", "n_splits": 3},
            "scoring": "accuracy",
            "test_size": 0.2,
        },
        **extra,
    }


def test_nested_cv_creates_one_study_per_outer_fold(client: TestClient) -> None:
    r = client.post(f"{API}/nested-cv", json={"study": spec(), "outer_splits": 3, "run": False})
    assert r.status_code == 201, r.text
    summary = r.json()
    assert summary["outer_splits"] == 3 and summary["done"] is False and summary["mean"] is None
    for k, fold in enumerate(summary["folds"]):
        study = client.get(f"{API}/studies/{fold['study_id']}").json()
        assert study["name"] == f"svc-nested-outer{k}"
        assert study["objective"]["outer_fold"] == {"n_splits": 3, "index": k, "seed": 0}
        assert study["objective"]["test_size"] is None
        assert study["metadata"]["nested_cv"]["group"] == "svc-nested"
    again = client.post(f"{API}/nested-cv", json={"study": spec(), "outer_splits": 3})
    assert again.status_code == 409
    assert client.get(f"{API}/nested-cv/svc-nested").json()["folds"][2]["index"] == 2
    assert client.get(f"{API}/nested-cv/unknown").status_code == 404


def test_nested_cv_rejects_bad_requests(client: TestClient) -> None:
    no_objective = {k: v for k, v in spec().items() if k != "objective"}
    r = client.post(f"{API}/nested-cv", json={"study": no_objective, "outer_splits": 3})
    assert r.status_code == 422 and "study.objective" in r.json()["error"]["message"]
    r = client.post(f"{API}/nested-cv", json={"study": spec(), "outer_splits": 1})
    assert r.status_code == 422 and "outer_splits" in r.json()["error"]["message"]
    r = client.post(f"{API}/nested-cv", json={"study": spec(max_trials=None), "outer_splits": 3})
    assert r.status_code == 422 and "study.max_trials" in r.json()["error"]["message"]
    assert client.get(f"{API}/studies").json()["studies"] == []


def test_run_and_evaluate_need_a_managed_objective(client: TestClient) -> None:
    plain = {k: v for k, v in spec().items() if k != "objective"}
    sid = client.post(f"{API}/studies", json=plain).json()["id"]
    r = client.post(f"{API}/studies/{sid}/run")
    assert r.status_code == 422 and "objective" in r.json()["error"]["message"]
    r = client.post(f"{API}/studies/{sid}/evaluate")
    assert r.status_code == 422
    managed = client.post(f"{API}/studies", json=spec(name="m")).json()["id"]
    assert client.post(f"{API}/studies/{managed}/evaluate").status_code == 409
    ran = client.post(f"{API}/studies/{managed}/run").json()
    assert ran["managed"] is True and ran["evaluation"] is None
