"""The study row lock leaves other trials' measurements alone (PostgreSQL).

Suggest and complete serialize on the study's row. The lock they take must not
also stop inserts that merely reference the study: a measurement row's foreign
key check takes a key-share lock on its study, which ``FOR UPDATE`` blocks and
``FOR NO KEY UPDATE`` does not. Under ``FOR UPDATE`` every measurement of a
busy study queued behind every suggest and complete.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import _truncate, make_client
from tests.specs import small_spec
from tuneforge.api.db.engine import Database
from tuneforge.api.db.repository import get_study_row

#: Seconds the measurement gets while another transaction holds the study's lock.
PATIENCE = 15.0


@pytest.fixture
def pg_client(pg_url: str) -> Iterator[TestClient]:
    _truncate(pg_url)
    with make_client(pg_url, reconcile_interval_seconds=0) as client:
        yield client


def test_a_measurement_is_stored_while_another_call_holds_the_study_lock(
    pg_client: TestClient,
) -> None:
    client = pg_client
    spec = small_spec("locked", algorithm="random")
    spec["early_stopping"] = {"rule": "none"}
    sid = int(client.post("/api/v1/studies", json=spec).json()["id"])
    reply = client.post(f"/api/v1/studies/{sid}/trials/suggest", json={"client_id": "w"}).json()
    base = f"/api/v1/studies/{sid}/trials/{reply['trials'][0]['number']}/measurements"
    assert client.post(base, json={"step": 0, "values": {"accuracy": 0.1}}).status_code == 200

    db: Database = client.app.state.db  # type: ignore[attr-defined]
    done = threading.Event()
    answers: list[int] = []

    def report() -> None:
        answers.append(client.post(base, json={"step": 1, "values": {"accuracy": 0.2}}).status_code)
        done.set()

    with db.write() as session:
        get_study_row(session, sid, lock=True)  # what suggest and complete take
        worker = threading.Thread(target=report)
        worker.start()
        stored_while_locked = done.wait(PATIENCE)
    worker.join(timeout=60)
    assert stored_while_locked, "the measurement waited for the study's lock"
    assert answers == [200]
    steps = [m["step"] for m in client.get(base.rsplit("/", 1)[0]).json()["measurements"]]
    assert steps == [0, 1]
