"""Dispatch on a trial's end and recovery of tasks a broker lost, on the real database.

The queues here record what would be published; tests/e2e/test_faults.py runs the
same paths with a real Redis that is restarted empty, and real Celery workers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from fastapi.testclient import TestClient

from tests.api.test_scheduler import API, RecordingQueue, reconcile, setup
from tuneforge.api.scheduler import Reconciler
from tuneforge.api.settings import Settings


class BrokerQueue(RecordingQueue):
    """A queue that can say which tasks its broker still holds (as Redis can)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: set[str] = set()

    def send(self, kind: str, study_id: int, task_id: str) -> None:
        super().send(kind, study_id, task_id)
        self.held.add(task_id)

    def revoke(self, task_ids: Sequence[str]) -> None:
        super().revoke(task_ids)
        self.held -= set(task_ids)

    def held_task_ids(self) -> set[str]:
        return set(self.held)


def claim_settings(seconds: float) -> Settings:
    return Settings(dispatch_ttl_seconds=60, dispatch_claim_seconds=seconds)


def test_tasks_the_broker_lost_are_sent_again_after_the_claim_timeout(client: TestClient) -> None:
    setup(client)
    queue, settings = BrokerQueue(), claim_settings(0.3)
    reconcile(client, queue, settings)
    first = [t for _, _, t in queue.sent]
    assert len(first) == 2
    reconcile(client, queue, settings)
    assert len(queue.sent) == 2, "tasks within the claim timeout are not replaced"
    time.sleep(0.4)
    reconcile(client, queue, settings)
    assert len(queue.sent) == 2, "tasks the broker still holds wait for a worker"
    queue.held.clear()  # Redis restarted empty
    reconcile(client, queue, settings)
    assert set(first) <= set(queue.revoked)
    replaced = [t for _, _, t in queue.sent[2:]]
    assert len(replaced) == 2 and not set(replaced) & set(first)


def test_a_claimed_task_is_never_sent_again(client: TestClient) -> None:
    sid, _, _ = setup(client)
    queue, settings = BrokerQueue(), claim_settings(0.2)
    reconcile(client, queue, settings)
    task = queue.sent[0][2]
    suggest = client.post(f"{API}/studies/{sid}/trials/suggest", json={"client_id": f"task:{task}"})
    assert suggest.status_code == 200
    queue.held.clear()
    time.sleep(0.3)
    reconcile(client, queue, settings)
    assert task not in queue.revoked
    assert len(queue.sent) == 3, "only the unclaimed task is replaced: one running, one waiting"


def test_without_a_broker_listing_unclaimed_trial_tasks_are_resent_after_the_timeout(
    client: TestClient,
) -> None:
    setup(client)
    queue, settings = RecordingQueue(), claim_settings(0.2)
    reconcile(client, queue, settings)
    first = {t for _, _, t in queue.sent}
    time.sleep(0.3)
    reconcile(client, queue, settings)
    assert first <= set(queue.revoked)
    assert len(queue.sent) == 4


def test_a_trial_that_ends_dispatches_its_successor_without_waiting_for_a_pass(
    client: TestClient,
) -> None:
    sid, _, _ = setup(client)
    queue = BrokerQueue()
    app = client.app
    reconciler = Reconciler(app.state.db, Settings(reconcile_interval_seconds=60), queue)  # type: ignore[attr-defined]
    app.state.reconciler = reconciler  # type: ignore[attr-defined]
    reconciler.mark_managed(sid)
    reconciler.after_trial_ended(sid)
    tasks = [t for _, _, t in queue.sent]
    assert len(tasks) == 2
    numbers = []
    for task in tasks:
        reply = client.post(
            f"{API}/studies/{sid}/trials/suggest", json={"client_id": f"task:{task}"}
        )
        numbers.append(reply.json()["trials"][0]["number"])
    done = client.post(
        f"{API}/studies/{sid}/trials/{numbers[0]}/complete", json={"values": {"accuracy": 0.9}}
    )
    assert done.status_code == 200
    assert len(queue.sent) == 3, "the completion dispatched one task for the freed slot"
    failed = client.post(
        f"{API}/studies/{sid}/trials/{numbers[1]}/fail", json={"reason": "oom", "retry": False}
    )
    assert failed.status_code == 200
    assert len(queue.sent) == 4, "a failure frees its slot too"


def test_a_study_this_reconciler_has_not_seen_managed_waits_for_the_pass(
    client: TestClient,
) -> None:
    sid, _, _ = setup(client)
    queue = BrokerQueue()
    reconciler = Reconciler(client.app.state.db, Settings(reconcile_interval_seconds=60), queue)  # type: ignore[attr-defined]
    client.app.state.reconciler = reconciler  # type: ignore[attr-defined]
    (trial,) = client.post(f"{API}/studies/{sid}/trials/suggest", json={}).json()["trials"]
    done = client.post(
        f"{API}/studies/{sid}/trials/{trial['number']}/complete", json={"values": {"accuracy": 0.9}}
    )
    assert done.status_code == 200
    assert queue.sent == [], "a study this server has not seen managed is left to the pass"
