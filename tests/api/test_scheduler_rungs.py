"""The reconciler and promoted trials of a managed study trained by rungs (on the real
database; the queue records what would be sent). tests/e2e/test_managed_rungs.py runs
the same path with real Celery workers."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.test_scheduler import RecordingQueue, reconcile
from tuneforge.api.settings import Settings

API = "/api/v1"


def rung_spec(**extra: Any) -> dict[str, Any]:
    return {
        "name": "rf-rungs",
        "parameters": [{"name": "max_depth", "type": "int", "low": 1, "high": 8}],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "fidelity": {"name": "n_estimators", "min": 10, "max": 90},
        "early_stopping": {"rule": "asha", "reduction_factor": 3},
        "max_trials": 2,
        "max_active_trials": 2,
        "objective": {
            "kind": "sklearn",
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "dataset": {"source": "sklearn", "name": "iris"},
            "cv": {"type": "stratified_kfold", "n_splits": 3},
        },
        **extra,
    }


def take(client: TestClient, sid: int, task: str) -> dict[str, Any]:
    reply = client.post(f"{API}/studies/{sid}/trials/suggest", json={"client_id": f"task:{task}"})
    (trial,) = reply.json()["trials"]
    return dict(trial)


def pause_at(client: TestClient, sid: int, trial: dict[str, Any], step: int, value: float) -> None:
    base = f"{API}/studies/{sid}/trials/{trial['number']}"
    reply = client.post(f"{base}/measurements", json={"step": step, "values": {"accuracy": value}})
    assert reply.json()["should_stop"] is True
    done = client.post(f"{base}/complete", json={"values": {"accuracy": value}})
    assert done.json()["state"] == "paused"


def test_a_promotion_after_the_budget_is_spent_gets_a_task(client: TestClient) -> None:
    sid = client.post(f"{API}/studies", json=rung_spec()).json()["id"]
    assert client.post(f"{API}/studies/{sid}/run").status_code == 200
    queue, settings = RecordingQueue(), Settings(dispatch_ttl_seconds=60)
    reconcile(client, queue, settings)
    first, second = (take(client, sid, task) for _, _, task in queue.sent)
    pause_at(client, sid, first, 10, 0.9)
    pause_at(client, sid, second, 10, 0.6)
    study = client.get(f"{API}/studies/{sid}").json()
    # both paused, the budget spent: the rule's last say promotes the best paused trial
    assert study["state"] == "active" and study["trial_counts"]["paused"] == 2
    reconcile(client, queue, settings)
    assert len(queue.sent) == 3, "the promoted trial needs a worker although max_trials is used"
    resumed = take(client, sid, queue.sent[-1][2])
    assert (resumed["number"], resumed["resume_from_step"]) == (first["number"], 10)
    reconcile(client, queue, settings)
    assert len(queue.sent) == 3, "nothing else to do while the promoted trial runs"
    pause_at(client, sid, resumed, 30, 0.93)  # alone at rung 30: paused, then promoted again
    reconcile(client, queue, settings)
    again = take(client, sid, queue.sent[-1][2])
    assert (again["number"], again["resume_from_step"]) == (first["number"], 30)
    base = f"{API}/studies/{sid}/trials/{again['number']}"
    reply = client.post(f"{base}/measurements", json={"step": 90, "values": {"accuracy": 0.95}})
    assert reply.json()["should_stop"] is False
    client.post(f"{base}/complete", json={"values": {"accuracy": 0.95}})
    study = client.get(f"{API}/studies/{sid}").json()
    assert study["state"] == "completed", study
    counts = study["trial_counts"]
    assert counts["completed"] == 1 and counts["pruned"] == 1, counts
    reconcile(client, queue, settings)
    assert [k for k, _, _ in queue.sent].count("trial") == 4


def test_paused_trials_hold_no_slot(client: TestClient) -> None:
    sid = client.post(f"{API}/studies", json=rung_spec(max_trials=6)).json()["id"]
    assert client.post(f"{API}/studies/{sid}/run").status_code == 200
    queue, settings = RecordingQueue(), Settings(dispatch_ttl_seconds=60)
    reconcile(client, queue, settings)
    assert len(queue.sent) == 2
    for _, _, task in list(queue.sent):
        pause_at(client, sid, take(client, sid, task), 10, 0.5)
    reconcile(client, queue, settings)
    assert len(queue.sent) == 4, "two paused trials leave both slots free for new work"
