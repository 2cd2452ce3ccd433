"""The held-out rows are scored once: ``POST /evaluate`` answers 409 once the evaluation
exists, a worker cannot store a second one, and an admin may force a re-evaluation,
which keeps the one it replaces and who forced it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tuneforge.api.services import keys

API = "/api/v1"
SPEC = {
    "name": "evaluated-once",
    "parameters": [{"name": "C", "type": "float", "low": 0.1, "high": 10}],
    "metrics": [{"name": "accuracy", "goal": "maximize"}],
    "max_trials": 5,
    "objective": {
        "kind": "sklearn",
        "estimator": "sklearn.svm.SVC",
        "dataset": {"source": "sklearn", "name": "iris"},
        "test_size": 0.2,
    },
}
RESULT = {"trial_number": 0, "params": {"C": 1.0}, "cv_score": 0.9, "test_score": 0.8}


def test_the_held_out_rows_are_scored_once_unless_an_admin_forces_it(client: TestClient) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    admin = keys.create_key(db, "default", "admin")[1]
    key_id = int(admin.split("_")[1])
    auth = {"Authorization": f"Bearer {admin}"}
    sid = client.post(f"{API}/studies", json=SPEC, headers=auth).json()["id"]
    (trial,) = client.post(
        f"{API}/studies/{sid}/trials/suggest", json={"count": 1}, headers=auth
    ).json()["trials"]
    done = client.post(
        f"{API}/studies/{sid}/trials/{trial['number']}/complete",
        json={"values": {"accuracy": 0.9}},
        headers=auth,
    )
    assert done.status_code == 200, done.text

    def evaluate(**params: Any) -> Any:
        return client.post(f"{API}/studies/{sid}/evaluate", params=params, headers=auth)

    def store(result: dict[str, Any]) -> Any:
        return client.put(f"{API}/studies/{sid}/evaluation", json=result, headers=auth)

    first = evaluate()
    assert first.status_code == 200 and first.json()["evaluation"]["state"] == "requested"
    assert evaluate().json()["evaluation"] == first.json()["evaluation"]  # still queued
    assert store(RESULT).json()["evaluation"]["test_score"] == 0.8
    again = evaluate()
    assert again.status_code == 409, again.text
    assert again.json()["error"]["details"]["field"] == "evaluation"
    assert "force=true" in again.json()["error"]["message"]
    second = store({**RESULT, "test_score": 0.99})
    assert second.status_code == 409  # a second worker result is refused too
    study = client.get(f"{API}/studies/{sid}", headers=auth).json()
    assert study["evaluation"]["test_score"] == 0.8

    forced = evaluate(force="true")
    assert forced.status_code == 200, forced.text
    evaluation = forced.json()["evaluation"]
    assert evaluation["state"] == "requested"
    assert evaluation["forced"]["by_key"] == key_id
    assert evaluation["forced"]["previous"]["test_score"] == 0.8
    redone = store({**RESULT, "test_score": 0.85}).json()["evaluation"]
    assert redone["state"] == "done" and redone["test_score"] == 0.85
    assert redone["forced"]["previous"]["test_score"] == 0.8
    assert evaluate().status_code == 409
    audit = client.get(f"{API}/audit", headers=auth).json()["entries"]
    assert [e["status"] for e in audit if e["route"].endswith("/evaluate")][:2] == [409, 200]
