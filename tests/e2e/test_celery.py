"""Managed studies end to end: real PostgreSQL, real Redis, the API server process and
`tuneforge worker` processes (Celery)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    E2E_TIMEOUT,
    PrivateRedis,
    Worker,
    all_trials,
    start_server,
    wait_for,
)

pytestmark = pytest.mark.slow


def sklearn_spec(name: str, trials: int = 20) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": [
            {"name": "C", "type": "float", "low": 0.001, "high": 100, "scale": "log"},
            {"name": "solver", "type": "categorical", "values": ["lbfgs", "newton-cg"]},
        ],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "early_stopping": {"rule": "median", "n_startup_trials": 4},
        "max_trials": trials,
        "max_active_trials": 2,
        "objective": {
            "kind": "sklearn",
            "estimator": "sklearn.linear_model.LogisticRegression",
            "fixed_params": {"max_iter": 300},
            "dataset": {"source": "sklearn", "name": "iris"},
            "cv": {"type": "stratified_kfold", "n_splits": 3},
            "scoring": "accuracy",
            "test_size": 0.2,
        },
    }


def python_spec(name: str, trials: int = 20, pause: float = 0.25) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "metrics": [{"name": "loss", "goal": "minimize"}],
        "max_trials": trials,
        "max_active_trials": 2,
        "retries": {"max_retries": 2, "lease_seconds": 3},
        "objective": {
            "kind": "python",
            "callable": "tests.e2e.objectives:slow_quadratic",
            "options": {"pause": pause},
        },
    }


class Cluster:
    def __init__(self, db_url: str, broker: str, workers: int = 2) -> None:
        self.server = start_server(db_url, broker)
        self.url = self.server.url
        self.broker = broker
        self.workers = [Worker(self.url, broker, f"w{i}") for i in range(workers)]
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", timeout=E2E_TIMEOUT)

    def stop(self) -> None:
        self.http.close()
        for w in self.workers:
            w.stop()
        self.server.stop()

    def run(self, spec: dict[str, Any]) -> int:
        sid = self.http.post("/studies", json=spec).json()["id"]
        r = self.http.post(f"/studies/{sid}/run")
        assert r.status_code == 200 and r.json()["managed"] is True, r.text
        return int(sid)

    def study(self, sid: int) -> dict[str, Any]:
        return dict(self.http.get(f"/studies/{sid}").json())


@pytest.fixture
def cluster(cluster_db: str, broker_url: str) -> Iterator[Cluster]:
    c = Cluster(cluster_db, broker_url)
    yield c
    c.stop()


def finished_with_evaluation(cluster: Cluster, sid: int) -> dict[str, Any] | None:
    study = cluster.study(sid)
    evaluation = study.get("evaluation") or {}
    done = study["state"] == "completed" and evaluation.get("state") in ("done", "failed")
    return study if done else None


def test_managed_sklearn_study_runs_to_the_end_with_a_test_score(cluster: Cluster) -> None:
    sid = cluster.run(sklearn_spec("e2e-sklearn"))
    study = wait_for(lambda: finished_with_evaluation(cluster, sid), 240, "the study to finish")
    trials = all_trials(cluster.url, sid)
    assert len(trials) == 20
    assert sorted(t["number"] for t in trials) == list(range(20))
    assert {t["state"] for t in trials} <= {"completed", "pruned"}
    assert all(len(t["measurements"]) >= 1 for t in trials)
    assert all(t["client_id"].startswith("task:") for t in trials)
    evaluation = study["evaluation"]
    assert evaluation["state"] == "done", evaluation
    assert 0.5 < evaluation["test_score"] <= 1.0
    assert evaluation["cv_score"] == study["best_trial"]["values"]["accuracy"]
    assert evaluation["trial_number"] == study["best_trial"]["number"]


def test_sigkill_of_a_worker_retries_its_trial(cluster: Cluster) -> None:
    trials = 10  # enough for both workers to be busy when one is killed, then a retry
    # Trials of 4 s (4 steps of 1 s): the victim must still be training when the kill
    # lands, after the poll below saw both workers busy (under load a poll took long
    # enough for a 1 s trial to finish in between, and then nothing was lost).
    sid = cluster.run(python_spec("e2e-kill", trials=trials, pause=1.0))
    wait_for(
        lambda: any(t["state"] == "completed" for t in all_trials(cluster.url, sid)),
        120,
        "a first completed trial",
    )
    victim = cluster.workers[0]

    def both_busy() -> list[dict[str, Any]]:
        """Two active trials: each worker (concurrency 1) runs one, the victim too; with
        one active trial the victim may be between tasks and lose nothing."""
        active = [t for t in all_trials(cluster.url, sid) if t["state"] == "active"]
        return active if len(active) >= 2 else []

    running = wait_for(both_busy, 60, "both workers running a trial")
    assert running
    victim.kill()
    wait_for(lambda: cluster.study(sid)["state"] == "completed", 240, "the study to finish")
    stored = all_trials(cluster.url, sid)
    by_number = {t["number"]: t for t in stored}
    completed = [t for t in stored if t["state"] == "completed"]
    assert len(completed) == trials
    assert not [t for t in stored if t["state"] in ("active", "requested", "stopping")]
    lost = [t for t in stored if t["state"] == "failed"]
    assert lost and all("lease expired" in t["reason"] for t in lost)
    retries = [t for t in stored if t["retry_of"] is not None]
    assert retries, "the killed worker's trial was not retried"
    for retry in retries:
        assert retry["params"] == by_number[retry["retry_of"]]["params"]
    assert any(r["state"] == "completed" for r in retries)


def test_redis_restart_mid_study_is_only_a_delay(cluster_db: str) -> None:
    redis = PrivateRedis().start()
    cluster = Cluster(cluster_db, redis.url)
    try:
        sid = cluster.run(python_spec("e2e-redis", trials=12))
        wait_for(
            lambda: cluster.study(sid)["trial_counts"]["completed"] >= 3,
            120,
            "three completed trials",
        )
        redis.kill()
        redis.start()
        study = wait_for(
            lambda: (s := cluster.study(sid))["state"] == "completed" and s,
            240,
            "the study to finish after the Redis restart",
        )
        assert study["trial_counts"]["completed"] == 12
        trials = all_trials(cluster.url, sid)
        assert not [t for t in trials if t["state"] in ("active", "requested")]
    finally:
        cluster.stop()
        redis.kill()


def test_nested_cv_runs_its_inner_studies_on_the_workers(cluster: Cluster) -> None:
    spec = sklearn_spec("e2e-nested", trials=4)
    spec["early_stopping"] = {"rule": "none"}
    r = cluster.http.post("/nested-cv", json={"study": spec, "outer_splits": 3})
    assert r.status_code == 201, r.text

    def summary() -> dict[str, Any] | None:
        s = dict(cluster.http.get("/nested-cv/e2e-nested").json())
        return s if s["done"] else None

    result = wait_for(summary, 240, "every outer fold's evaluation")
    scores = [f["outer_score"] for f in result["folds"]]
    assert len(scores) == 3 and all(0.5 < s <= 1.0 for s in scores)
    assert abs(result["mean"] - sum(scores) / 3) < 1e-9
    for fold in result["folds"]:
        assert fold["state"] == "completed" and fold["best_params"] is not None
        assert fold["trial_counts"]["completed"] == 4


def test_tuneforge_run_submits_to_the_team_server_and_follows(
    cluster: Cluster, tmp_path: Path
) -> None:
    spec_file = tmp_path / "study.json"
    spec_file.write_text(json.dumps(sklearn_spec("e2e-cli-run", trials=6)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuneforge.cli",
            "run",
            str(spec_file),
            "--server",
            cluster.url,
            "--timeout",
            "240",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "study 'e2e-cli-run'" in result.stdout
    assert "held-out test accuracy" in result.stdout
    assert f"stored on {cluster.url}" in result.stdout
