"""The study row lock leaves other trials' measurements and other studies' completions
alone (PostgreSQL).

Suggest and complete serialize on the study's row. The lock they take must not
also stop inserts that merely reference the study: a measurement row's foreign
key check takes a key-share lock on its study, which ``FOR UPDATE`` blocks and
``FOR NO KEY UPDATE`` does not. Under ``FOR UPDATE`` every measurement of a
busy study queued behind every suggest and complete.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

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


def _waiting_on_a_lock(db: Database) -> bool:
    """Whether some session of this database waits for a row lock."""
    with db.read() as session:
        n = session.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(n)


def _until_blocked(db: Database, call: str) -> None:
    """Wait (at most :data:`PATIENCE`) until some session waits for a row lock: ``call``,
    started in another thread, reached the study's lock."""
    deadline = time.monotonic() + PATIENCE
    while not _waiting_on_a_lock(db) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _waiting_on_a_lock(db), f"the {call} never reached the study's lock"


def test_a_completion_does_not_wait_for_a_suggest_stuck_on_another_study(pg_url: str) -> None:
    """With one thread per pool, a suggest stuck on its study's lock holds suggest's only
    thread; a completion on another study still runs (api/threads.py: its own pool)."""
    _truncate(pg_url)
    with make_client(pg_url, reconcile_interval_seconds=0, threads=1) as client:
        stuck, free = (
            int(client.post("/api/v1/studies", json=small_spec(n, algorithm="random")).json()["id"])
            for n in ("stuck", "free")
        )
        got = client.post(f"/api/v1/studies/{free}/trials/suggest", json={"client_id": "w"})
        number = got.json()["trials"][0]["number"]
        db: Database = client.app.state.db  # type: ignore[attr-defined]
        answers: dict[str, int] = {}
        completed = threading.Event()

        def suggest_stuck() -> None:
            r = client.post(f"/api/v1/studies/{stuck}/trials/suggest", json={"client_id": "s"})
            answers["suggest"] = r.status_code

        def complete_free() -> None:
            r = client.post(
                f"/api/v1/studies/{free}/trials/{number}/complete",
                json={"values": {"accuracy": 0.5}},
            )
            answers["complete"] = r.status_code
            completed.set()

        with db.write() as session:
            get_study_row(session, stuck, lock=True)
            blocked = threading.Thread(target=suggest_stuck)
            blocked.start()
            _until_blocked(db, "suggest")
            finisher = threading.Thread(target=complete_free)
            finisher.start()
            done_while_stuck = completed.wait(PATIENCE)
        blocked.join(timeout=60)
        finisher.join(timeout=60)
        assert done_while_stuck, "the completion waited for a suggest of another study"
        assert answers == {"suggest": 200, "complete": 200}


def _lock_series(client: TestClient) -> dict[str, float]:
    """The study-lock histograms' counts and sums from ``/metrics``."""
    from tests.api.test_metrics import scrape

    samples = scrape(client)
    return {
        f"{kind}_{part}": samples[(f"tuneforge_study_lock_{kind}_seconds_{part}", ())]
        for kind in ("wait", "hold")
        for part in ("count", "sum")
    }


def test_the_metrics_show_how_long_the_study_lock_was_waited_for_and_held(
    pg_client: TestClient,
) -> None:
    client = pg_client
    sid = int(client.post("/api/v1/studies", json=small_spec("m", algorithm="random")).json()["id"])
    before = _lock_series(client)
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    answers: list[int] = []

    def suggest() -> None:
        r = client.post(f"/api/v1/studies/{sid}/trials/suggest", json={"client_id": "w"})
        answers.append(r.status_code)

    held_for = 0.3
    with db.write() as session:
        get_study_row(session, sid, lock=True)
        waiter = threading.Thread(target=suggest)
        waiter.start()
        _until_blocked(db, "suggest")
        time.sleep(held_for)
    waiter.join(timeout=60)
    assert answers == [200]
    after = _lock_series(client)
    # this test's transaction and the suggest's claim: two locks, each held once
    assert after["hold_count"] - before["hold_count"] == 2
    assert after["wait_count"] - before["wait_count"] == 2
    assert after["hold_sum"] - before["hold_sum"] >= held_for
    assert after["wait_sum"] - before["wait_sum"] >= held_for  # the suggest waited it out
