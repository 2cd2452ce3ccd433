"""Measurements of a study without an early-stopping rule, and heartbeats, under the
trial's lock alone (api/services/lease_calls.py).

Through the real app on SQLite and PostgreSQL: every answer is the one the usual path
gives (stored once, lease extended, a repeat, a stopping trial, bad values, unknown and
finished trials, a run-out lease). On PostgreSQL each is two statements besides the
authorization read and the audit row, with no ORM object built and the study row left
alone, and every call that takes the usual path is handed over before anything is written.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from tests.conftest import make_client, statements_of
from tests.specs import small_spec
from tuneforge.api.db.engine import Database
from tuneforge.api.db.models import MeasurementRow, TrialRow
from tuneforge.api.db.repository import utcnow
from tuneforge.api.services import lease_calls

STEP = {"step": 1, "values": {"accuracy": 0.25}, "elapsed_seconds": 2}


def _db(client: TestClient) -> Database:
    return client.app.state.db  # type: ignore[attr-defined,no-any-return]


def _study(client: TestClient, rule: str = "none", name: str = "plain") -> int:
    spec = small_spec(f"{name}-{rule}", algorithm="random", early_stopping={"rule": rule})
    r = client.post("/api/v1/studies", json=spec)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _trial(client: TestClient, sid: int) -> str:
    r = client.post(f"/api/v1/studies/{sid}/trials/suggest", json={"client_id": "w"})
    return f"/api/v1/studies/{sid}/trials/{r.json()['trials'][0]['number']}"


def _stored(db: Database, sid: int) -> list[tuple[int, Any]]:
    with db.read() as session:
        rows = session.execute(
            select(MeasurementRow.step, MeasurementRow.values).where(MeasurementRow.study_id == sid)
        )
        return [tuple(r) for r in rows]


def _expire_leases(db: Database, sid: int) -> None:
    """The study's running trials' leases ran out an hour ago."""
    with db.write() as session:
        session.execute(
            update(TrialRow)
            .where(TrialRow.study_id == sid)
            .values(lease_expires_at=utcnow() - timedelta(hours=1))
        )


def test_a_plain_report_is_two_statements_and_no_orm_object(client: TestClient) -> None:
    db = _db(client)
    sid = _study(client)
    trial = _trial(client, sid)
    lease_before = client.get(trial).json()["lease_expires_at"]
    built: list[Any] = []

    def on_load(target: Any, _context: Any) -> None:
        built.append(target)

    event.listen(TrialRow, "load", on_load)
    try:
        with statements_of(db) as statements:
            r = client.post(f"{trial}/measurements", json=STEP)
    finally:
        event.remove(TrialRow, "load", on_load)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "should_stop": False,
        "trial_state": "active",
        "action": None,
        "next_decision_step": None,
    }
    work = [s for s in statements if "api_keys" not in s and "audit_log" not in s]
    if db.backend == "postgresql":
        assert len(work) == 2 and not built, work
        assert "FOR NO KEY UPDATE OF trials" in work[0] and "INSERT INTO measurements" in work[1]
    shown = client.get(trial).json()
    assert [(m["step"], m["values"], m["elapsed_seconds"]) for m in shown["measurements"]] == [
        (1, {"accuracy": 0.25}, 2.0)
    ]
    assert shown["lease_expires_at"] > lease_before


def test_plain_reports_answer_as_the_usual_path(client: TestClient) -> None:
    db = _db(client)
    sid = _study(client)
    trial = _trial(client, sid)
    assert client.post(f"{trial}/measurements", json=STEP).status_code == 200
    again = client.post(f"{trial}/measurements", json={**STEP, "values": {"accuracy": 0.9}})
    assert again.status_code == 200 and again.json()["trial_state"] == "active"
    assert _stored(db, sid) == [(1, {"accuracy": 0.25})], "a repeat stores nothing"

    bad = client.post(f"{trial}/measurements", json={"step": 2, "values": {"accuracy": "x"}})
    assert bad.status_code == 422 and "values" in bad.text, bad.text
    missing = client.post(f"/api/v1/studies/{sid}/trials/999/measurements", json=STEP)
    assert missing.status_code == 404 and "trial 999" in missing.text, missing.text
    no_study = client.post("/api/v1/studies/99999/trials/0/measurements", json=STEP)
    assert no_study.status_code == 404 and "study 99999" in no_study.text, no_study.text

    assert client.post(f"{trial}/stop").status_code == 200
    stopping = client.post(f"{trial}/measurements", json={**STEP, "step": 2})
    assert stopping.json() == {
        "should_stop": True,
        "trial_state": "stopping",
        "action": None,
        "next_decision_step": None,
    }
    assert client.post(f"{trial}/complete", json={"values": {"accuracy": 0.5}}).status_code == 200
    late = client.post(f"{trial}/measurements", json={**STEP, "step": 3})
    assert late.status_code == 409 and "already" in late.text, late.text
    assert [s for s, _ in _stored(db, sid)] == [1, 2]


def test_a_run_out_lease_goes_the_usual_way_and_is_reaped(client: TestClient) -> None:
    db = _db(client)
    sid = _study(client)
    trial = _trial(client, sid)
    _expire_leases(db, sid)
    bad = {"step": 1, "values": {"accuracy": "x"}}  # the lease is judged before the values
    r = client.post(f"{trial}/measurements", json=bad)
    assert r.status_code == 409 and "lease" in r.text, r.text
    assert client.get(trial).json()["state"] == "failed"
    assert _stored(db, sid) == []


@pytest.mark.parametrize("case", ["missing", "finished", "expired", "median"])
def test_what_the_plain_path_leaves_to_the_usual_one_is_not_written(pg_url: str, case: str) -> None:
    """On PostgreSQL :func:`lease_calls.measurement` hands these over (None) with nothing
    stored and the trial unchanged; a study whose rule decides is remembered as such."""
    with make_client(pg_url, reconcile_interval_seconds=0) as client:
        db = _db(client)
        sid = _study(client, "median" if case == "median" else "none", name=f"left-{case}")
        number = int(_trial(client, sid).rsplit("/", 1)[1])
        if case == "finished":
            url = f"/api/v1/studies/{sid}/trials/{number}/complete"
            assert client.post(url, json={"values": {"accuracy": 0.5}}).status_code == 200
        if case == "expired":
            _expire_leases(db, sid)
        with db.read() as session:
            before = session.execute(select(TrialRow).where(TrialRow.study_id == sid)).one()[0]
            before = {c: getattr(before, c) for c in ("state", "lease_expires_at", "updated_at")}
        target = number + 5 if case == "missing" else number
        assert lease_calls.measurement(db, sid, target, 1, {"accuracy": 0.1}, None) is None
        assert _stored(db, sid) == []
        with db.read() as session:
            after = session.execute(select(TrialRow).where(TrialRow.study_id == sid)).one()[0]
            assert before == {c: getattr(after, c) for c in before}
        with statements_of(db) as statements:
            lease_calls.measurement(db, sid, target, 1, {"accuracy": 0.1}, None)
        assert len(statements) == (0 if case == "median" else 1), statements


def test_sqlite_takes_the_usual_path(sqlite_url: str) -> None:
    with make_client(sqlite_url, reconcile_interval_seconds=0) as client:
        db = _db(client)
        sid = _study(client, name="sqlite")
        number = int(_trial(client, sid).rsplit("/", 1)[1])
        assert lease_calls.measurement(db, sid, number, 1, {"accuracy": 0.1}, None) is None
        assert _stored(db, sid) == []


@pytest.mark.parametrize("rule", ["none", "median"])
def test_a_heartbeat_extends_the_lease_under_the_trial_lock_alone(
    client: TestClient, rule: str
) -> None:
    db = _db(client)
    sid = _study(client, rule, name="beat")
    trial = _trial(client, sid)
    lease_before = client.get(trial).json()["lease_expires_at"]
    with statements_of(db) as statements:
        r = client.post(f"{trial}/heartbeat")
    assert r.json() == {"should_stop": False, "trial_state": "active"}, r.text
    assert client.get(trial).json()["lease_expires_at"] > lease_before
    work = [s for s in statements if "api_keys" not in s and "audit_log" not in s]
    if db.backend == "postgresql":
        assert len(work) == 2, work
        assert "FOR NO KEY UPDATE OF trials" in work[0] and work[1].startswith("UPDATE trials")
        assert not any("FOR UPDATE" in s or s.startswith("UPDATE studies") for s in work)
    assert client.post(f"{trial}/stop").status_code == 200
    assert client.post(f"{trial}/heartbeat").json() == {
        "should_stop": True,
        "trial_state": "stopping",
    }
    assert client.post(f"{trial}/complete", json={"values": {"accuracy": 0.5}}).status_code == 200
    late = client.post(f"{trial}/heartbeat")
    assert late.status_code == 409 and "already" in late.text, late.text
    missing = client.post(f"/api/v1/studies/{sid}/trials/999/heartbeat")
    assert missing.status_code == 404 and "trial 999" in missing.text, missing.text


def test_a_heartbeat_after_the_lease_ran_out_is_refused_and_the_trial_failed(
    client: TestClient,
) -> None:
    db = _db(client)
    sid = _study(client, name="late-beat")
    trial = _trial(client, sid)
    _expire_leases(db, sid)
    r = client.post(f"{trial}/heartbeat")
    assert r.status_code == 409 and "lease" in r.text, r.text
    assert client.get(trial).json()["state"] == "failed"
