"""Population-based training of a managed scikit-learn objective on real Celery workers.

Real processes throughout: the API server (SQLite and PostgreSQL), Redis and two
``tuneforge worker`` processes. A population of four SGD classifiers on digits trains by
epochs (``max_iter``, ``partial_fit``); two members start with a crippling
regularization (alpha 30). At each interval the bottom half is told to exploit: the worker loads
the donor's checkpoint through the checkpoint endpoint, sets the explored params on the
donor's per-fold models and trains on. The test checks the exploit steps in each trial's
history, that every donor ranked better there, that the exploited members end better
than where they were, that the population ends better than it started, and that
suggest never started more than the population.
"""

from __future__ import annotations

import pickle
from statistics import mean
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import E2E_TIMEOUT, Worker, all_trials, start_server, wait_for

pytestmark = pytest.mark.slow

GOOD, BAD = {"alpha": 1e-4}, {"alpha": 30.0}  # accuracy about 0.9 and 0.3
PARAMS = [GOOD, BAD, GOOD, BAD]


def pbt_spec() -> dict[str, Any]:
    return {
        "name": "e2e-pbt",
        "parameters": [
            {"name": "alpha", "type": "float", "low": 1e-5, "high": 100.0, "scale": "log"}
        ],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "algorithm": "random",
        "fidelity": {"name": "max_iter", "min": 1, "max": 8},
        "early_stopping": {
            "rule": "pbt",
            "population": len(PARAMS),
            "interval": 2,
            "quantile": 0.5,
            "perturb": 0.05,
            "resample_probability": 0.0,
        },
        "max_trials": 20,  # the population, not this, ends the study
        "objective": {
            "kind": "sklearn",
            "estimator": "sklearn.linear_model.SGDClassifier",
            "fixed_params": {"learning_rate": "constant", "eta0": 1e-3, "random_state": 0},
            "dataset": {"source": "sklearn", "name": "digits"},
            "cv": {"type": "stratified_kfold", "n_splits": 3},
            "scoring": "accuracy",
        },
    }


def value_at(trial: dict[str, Any], step: int) -> float:
    """The trial's accuracy at the first step at or past ``step``, or its newest before."""
    series = [(m["step"], m["values"]["accuracy"]) for m in trial["measurements"]]
    later = [v for s, v in series if s >= step]
    return later[0] if later else series[-1][1]


def test_pbt_exploits_better_members_on_celery_workers(db_url: str, broker_url: str) -> None:
    server = start_server(db_url, broker_url)
    workers = [Worker(server.url, broker_url, f"pbt{i}") for i in range(2)]
    http = httpx.Client(base_url=f"{server.url}/api/v1", timeout=E2E_TIMEOUT)
    try:
        sid = http.post("/studies", json=pbt_spec()).json()["id"]
        for params in PARAMS:
            r = http.post(f"/studies/{sid}/trials", json={"params": params, "state": "requested"})
            assert r.status_code == 201, r.text
        extra = http.post(f"/studies/{sid}/trials", json={"params": GOOD, "state": "requested"})
        assert extra.status_code == 409  # the population is full
        assert http.post(f"/studies/{sid}/run").status_code == 200
        study = wait_for(
            lambda: (s := http.get(f"/studies/{sid}").json())["state"] == "completed" and s,
            240,
            "the PBT study to finish",
        )
        trials = {t["number"]: t for t in all_trials(server.url, sid)}
        checkpoints = {
            n: pickle.loads(http.get(f"/studies/{sid}/trials/{n}/checkpoint").content)
            for n in trials
        }
    finally:
        for worker in workers:
            worker.stop()
        http.close()
        server.stop()

    assert study["completion_reason"] == "population_trained"
    assert sorted(trials) == [0, 1, 2, 3]  # never more than the population
    assert all(t["state"] == "completed" for t in trials.values())
    exploits = [
        (n, entry) for n, t in trials.items() for entry in t["metadata"].get("pbt_history", [])
    ]
    assert exploits, "no member exploited another"
    exploited = {n for n, _ in exploits}
    assert exploited & {1, 3}, "a crippled member should have exploited a better one"
    for n, entry in exploits:
        donor = trials[entry["from_trial"]]
        assert value_at(donor, entry["step"]) > value_at(trials[n], entry["step"])
        segments = [s for s in checkpoints[n]["segments"] if "exploit" in s]
        assert {(s["exploit"], s["step"]) for s in segments} >= {
            (entry["from_trial"], entry["step"])
        }, (n, checkpoints[n]["segments"], trials[n])
    for n in exploited & {1, 3}:
        first = trials[n]["metadata"]["pbt_history"][0]
        assert trials[n]["values"]["accuracy"] > value_at(trials[n], first["step"]) + 0.1
        assert trials[n]["params"]["alpha"] < 1.0  # it took a good member's params
    start = mean(t["measurements"][0]["values"]["accuracy"] for t in trials.values())
    final = mean(t["values"]["accuracy"] for t in trials.values())
    assert final > start + 0.1
