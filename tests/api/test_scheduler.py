"""The reconciler's planning for managed studies, on the real database.

The queue here records what the reconciler sends instead of publishing to
Redis; the end-to-end tests in tests/e2e run the same path with real Celery.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from fastapi.testclient import TestClient

from tests.api.test_nested import spec as managed_spec
from tuneforge.api.scheduler import reconcile_once
from tuneforge.api.settings import Settings

API = "/api/v1"


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, str]] = []
        self.revoked: list[str] = []

    def send(self, kind: str, study_id: int, task_id: str) -> None:
        self.sent.append((kind, study_id, task_id))

    def revoke(self, task_ids: Sequence[str]) -> None:
        self.revoked.extend(task_ids)


def setup(client: TestClient, **changes: Any) -> tuple[int, RecordingQueue, Settings]:
    body = managed_spec(name="managed", max_active_trials=2, **changes)
    sid = client.post(f"{API}/studies", json=body).json()["id"]
    assert client.post(f"{API}/studies/{sid}/run").status_code == 200
    return sid, RecordingQueue(), Settings(dispatch_ttl_seconds=60)


def reconcile(client: TestClient, queue: RecordingQueue, settings: Settings) -> None:
    reconcile_once(client.app.state.db, queue, settings)  # type: ignore[attr-defined]


def test_keeps_slots_filled_from_database_state(client: TestClient) -> None:
    sid, queue, settings = setup(client)
    reconcile(client, queue, settings)
    assert [k for k, _, _ in queue.sent] == ["trial", "trial"]
    reconcile(client, queue, settings)
    assert len(queue.sent) == 2, "waiting tasks must not be sent twice"
    task = queue.sent[0][2]
    trials = client.post(f"{API}/studies/{sid}/trials/suggest", json={"client_id": f"task:{task}"})
    (trial,) = trials.json()["trials"]
    reconcile(client, queue, settings)
    assert len(queue.sent) == 2, "one running trial and one waiting task fill both slots"
    client.post(
        f"{API}/studies/{sid}/trials/{trial['number']}/complete", json={"values": {"accuracy": 0.9}}
    )
    reconcile(client, queue, settings)
    assert len(queue.sent) == 3


def test_unclaimed_tasks_are_replaced_after_their_ttl(client: TestClient) -> None:
    _, queue, _ = setup(client)
    settings = Settings(dispatch_ttl_seconds=0.3)
    reconcile(client, queue, settings)
    first = {t for _, _, t in queue.sent}
    time.sleep(0.5)
    reconcile(client, queue, settings)
    assert first <= set(queue.revoked)
    assert len({t for _, _, t in queue.sent} - first) == 2


def test_pausing_revokes_waiting_tasks_and_completion_queues_the_evaluation(
    client: TestClient,
) -> None:
    sid, queue, settings = setup(client, max_trials=1)
    reconcile(client, queue, settings)
    waiting = [t for _, _, t in queue.sent]
    client.patch(f"{API}/studies/{sid}", json={"state": "paused"})
    reconcile(client, queue, settings)
    assert set(waiting) <= set(queue.revoked)
    client.patch(f"{API}/studies/{sid}", json={"state": "active"})
    (trial,) = client.post(f"{API}/studies/{sid}/trials/suggest", json={}).json()["trials"]
    client.post(
        f"{API}/studies/{sid}/trials/{trial['number']}/complete", json={"values": {"accuracy": 0.9}}
    )
    reconcile(client, queue, settings)
    assert queue.sent[-1][0] == "evaluate"
    assert client.get(f"{API}/studies/{sid}").json()["evaluation"]["state"] == "requested"
    reconcile(client, queue, settings)
    assert [k for k, _, _ in queue.sent].count("evaluate") == 1
    result = {
        "trial_number": trial["number"],
        "params": trial["params"],
        "cv_score": 0.9,
        "test_score": 0.88,
    }
    stored = client.put(f"{API}/studies/{sid}/evaluation", json=result).json()
    assert stored["evaluation"]["state"] == "done" and stored["evaluation"]["test_score"] == 0.88
